"""Dense auxiliary supervision for the vision tower (training only; never saved with the model).

Real VLMs start from a pretrained vision encoder. The default model has none, so training gives the
vision tower direct, per-patch targets from the world's ground truth: for every patch whose centre lies
in an object's box, the object's colour, shape and size, its box and centre coordinates, whether the
object's centre falls in this patch, its rank from the left (1 = leftmost: the order captions and boxes
list objects in) and how many objects the image holds. A linear head reads them from the tower's output,
so the features the connector hands to the language model encode them linearly. The head is dropped
after training.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dreamforge.model.data import location_ids
from dreamforge.world import COLOURS, PLURALS, SHAPES, Sample
from dreamforge.world.scene import MAX_OBJECTS
from dreamforge.world.tasks import LOCATION_FAMILIES, location_bins

_COLOURS, _SHAPES = list(COLOURS), list(SHAPES)
N_COLOUR, N_SHAPE, N_SIZE = len(_COLOURS) + 1, len(_SHAPES) + 1, 3  # class 0 = background
N_REG = 6  # x_min, y_min, x_max, y_max, x_centre, y_centre
N_RANK = MAX_OBJECTS + 1  # class 0 = background; also the classes of "how many objects", read on every object patch
RANK_WORDS = ("one", "two", "three", "four", "five", "six")  # an object's rank reads as these words
_VALUES = (_COLOURS, _SHAPES, ["small", "large"])
COUNT_WORDS = tuple(str(n) for n in range(MAX_OBJECTS + 1))  # how a count question is answered: `0` .. `6`


class AuxHead(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden, N_COLOUR + N_SHAPE + N_SIZE + 1 + N_REG + 2 * N_RANK)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(features)


def patch_targets(samples: list[Sample], grid: int) -> dict[str, torch.Tensor]:
    n = len(samples)
    cls = np.zeros((n, grid * grid, 5), dtype=np.int64)  # colour, shape, size, rank, number of objects
    centre = np.zeros((n, grid * grid), dtype=np.float32)
    reg = np.zeros((n, grid * grid, N_REG), dtype=np.float32)
    mask = np.zeros((n, grid * grid), dtype=bool)
    cs = (np.arange(grid) + 0.5) / grid
    for k, s in enumerate(samples):
        for rank, o in enumerate(s.objects, start=1):
            x0, y0, x1, y1 = o.box
            cx, cy = o.centre
            for yy in np.where((cs >= y0) & (cs <= y1))[0]:
                for xx in np.where((cs >= x0) & (cs <= x1))[0]:
                    j = yy * grid + xx
                    cls[k, j] = (
                        _COLOURS.index(o.colour) + 1, _SHAPES.index(o.shape) + 1, 1 + (o.size == "large"), rank,
                        len(s.objects),
                    )  # fmt: skip
                    reg[k, j] = (x0, y0, x1, y1, cx, cy)
                    mask[k, j] = True
            centre[k, min(int(cy * grid), grid - 1) * grid + min(int(cx * grid), grid - 1)] = 1.0
    return {
        "cls": torch.from_numpy(cls),
        "centre": torch.from_numpy(centre),
        "reg": torch.from_numpy(reg),
        "mask": torch.from_numpy(mask),
    }


def aux_loss(head: AuxHead, features: torch.Tensor, samples: list[Sample], grid: int) -> torch.Tensor:
    """Loss of the dense targets; `features` is the vision tower's output, (batch, grid*grid, hidden)."""
    t = {k: v.to(features.device) for k, v in patch_targets(samples, grid).items()}
    out = head(features.float())
    a, b, c = N_COLOUR, N_COLOUR + N_SHAPE, N_COLOUR + N_SHAPE + N_SIZE
    d = c + 1 + N_REG
    loss = (
        F.cross_entropy(out[..., :a].reshape(-1, a), t["cls"][..., 0].reshape(-1))
        + F.cross_entropy(out[..., a:b].reshape(-1, N_SHAPE), t["cls"][..., 1].reshape(-1))
        + F.cross_entropy(out[..., b:c].reshape(-1, N_SIZE), t["cls"][..., 2].reshape(-1))
        + F.cross_entropy(out[..., d : d + N_RANK].reshape(-1, N_RANK), t["cls"][..., 3].reshape(-1))
        + F.cross_entropy(out[..., d + N_RANK :].reshape(-1, N_RANK), t["cls"][..., 4].reshape(-1))
        + F.binary_cross_entropy_with_logits(out[..., c], t["centre"])
    )
    if t["mask"].any():
        loss = loss + 10 * F.smooth_l1_loss(out[..., c + 1 : d][t["mask"]], t["reg"][t["mask"]], beta=0.02)
    return loss


def token_targets(samples: list[Sample], grid: int) -> torch.Tensor:
    """Per image token (after pixel shuffle, `grid` x `grid`): class indices of the object whose centre lies in
    the token's cell, 0 where none does: colour, shape, size, then 1 + its location bins (centre x, centre y,
    width, height: the location tokens of `dreamforge.world.tasks`), then its rank from the left (1-based)."""
    out = np.zeros((len(samples), grid * grid, 4 + len(LOCATION_FAMILIES)), dtype=np.int64)
    for k, s in enumerate(samples):
        for rank, o in enumerate(s.objects, start=1):
            cx, cy = o.centre
            j = min(int(cy * grid), grid - 1) * grid + min(int(cx * grid), grid - 1)
            out[k, j] = (
                _COLOURS.index(o.colour) + 1, _SHAPES.index(o.shape) + 1, 1 + (o.size == "large"),
                *(1 + b for b in location_bins(o.box)), rank,
            )  # fmt: skip
    return torch.from_numpy(out)


def word_ids(tokenizer) -> list[list[int]]:
    """Token ids of the classes an image token is read as: [none, colours...], [none, shapes...],
    [none, small, large], then per location family [none, <x_0>, ..., <x_47>] (y, w, h likewise), then the
    object's rank [none, one, ..., six]."""
    ids = tokenizer.convert_tokens_to_ids
    return [
        [ids("none"), *[ids(c) for c in _COLOURS]],
        [ids("none"), *[ids(s) for s in _SHAPES]],
        [ids("none"), ids("small"), ids("large")],
        *[[ids("none"), *family] for family in location_ids(tokenizer).tolist()],
        [ids("none"), *[ids(w) for w in RANK_WORDS]],
    ]


def _soft_bins(target: torch.Tensor, n: int, sigma: float) -> torch.Tensor:
    """Class probabilities: class 0 (none) stays one-hot, a bin spreads as a Gaussian over its neighbours."""
    grid = torch.arange(n, device=target.device, dtype=torch.float32)
    soft = (-((grid[None] - target[:, None].float()) ** 2) / (2 * sigma**2)).softmax(-1)
    soft[:, 0] = 0.0
    soft = soft / soft.sum(-1, keepdim=True)
    hard = F.one_hot(target, n).float()
    return torch.where((target > 0)[:, None], soft, hard)


def alignment_loss(
    image_tokens: torch.Tensor, embeddings: torch.Tensor, classes: list[list[int]], samples, grid: int,
    sigma: float = 1.0,
):  # fmt: skip
    """Image tokens (connector output) classified against the language model's own word embeddings, so the
    token at an object's centre looks like `<colour> + <shape> + <size> + <x_i> + <y_j> + <w_k> + <h_l> + <rank>`
    to the language model, and a location answer is a copy of what the image token already says. Location
    bins get Gaussian targets (`sigma` bins), so a near miss costs less than a far one."""
    t = token_targets(samples, grid).to(image_tokens.device)
    loss = image_tokens.new_zeros(())
    for a, ids in enumerate(classes):
        logits = (image_tokens.float() @ embeddings[ids].float().T).reshape(-1, len(ids))
        target = t[..., a].reshape(-1)
        if 3 <= a < 3 + len(LOCATION_FAMILIES) and sigma > 0:
            loss = loss + F.cross_entropy(logits, _soft_bins(target, len(ids), sigma))
        else:
            loss = loss + F.cross_entropy(logits, target)
    return loss


class AttentionTargets:
    """Where language-model heads should look, from the world's ground truth (training only). Which layer
    learns which kind is `TrainConfig`'s (default: ground 1, route 2, locate 1 and 3, recall 2, next 3).

    - `ground`: every referring noun of a prompt (`circle`, `circles`, `object`, `shapes`, with the colour and
      size words before it) looks at the image tokens at the centres of the objects it names;
    - `route`: the position that starts a query's answer looks at the referring noun (a comparison's first one);
    - `compare`: in a comparison (`are there more circles than squares?`), that position also looks at the second
      noun, with another head, so the two counts arrive apart;
    - `count`: not a head: every referring noun of a prompt, matched or not, with the objects it names, whose
      number the hidden state after the `ground` layer must read as (zero included);
    - `locate`: the positions that predict each location token of a detect/point answer look at the
      image token at the centre of that object (whose features carry its location tokens), and so do the
      positions that predict each object's size, colour and shape words in a normal or long caption (in a
      short caption, a group's words look at all its members);
    - `recall`: the position that starts a caption item or a box looks at the previous one's last located
      position, so the rank just written is at hand;
    - `next`: the position that writes what follows an item or a box (`,`, `and`, the end), and the start of a
      detect / point answer, looks at the next object (or group, or match), or at the sequence start (position
      0) when none is left: the head that decides whether to go on, and `none`.
    """

    def __init__(self, tokenizer, image_token_id: int, grid: int) -> None:
        ids = tokenizer.convert_tokens_to_ids
        self.image_id, self.grid = image_token_id, grid
        self.user, self.colon, self.eos, self.sep = ids("user"), ids(":"), ids(tokenizer.eos_token), ids(",")
        self.list_end = {self.sep, ids("and"), ids(".")}  # what may follow an item of a caption's list
        self.colour = {ids(c): c for c in _COLOURS}
        self.size = {ids("small"): "small", ids("large"): "large"}
        self.noun = {ids(s): s for s in _SHAPES} | {ids(PLURALS[s]): s for s in _SHAPES}
        self.generic = {ids("object"), ids("shapes")}

    def __call__(self, batch, samples: list[Sample], conversations) -> dict[str, list[tuple]]:
        """Per kind, (row, position, target positions, objects named, their ranks from the left) entries."""
        kinds = ("ground", "route", "compare", "count", "locate", "recall", "next")
        out: dict[str, list[tuple]] = {kind: [] for kind in kinds}
        ids, turns = batch["input_ids"], batch["turns"]
        g = self.grid
        for r, (sample, tasks) in enumerate(zip(samples, conversations, strict=True)):
            seq = ids[r].tolist()
            image_pos = [j for j, t in enumerate(seq) if t == self.image_id]
            if len(image_pos) != g * g:
                continue
            cells = [
                image_pos[min(int(o.centre[1] * g), g - 1) * g + min(int(o.centre[0] * g), g - 1)]
                for o in sample.objects
            ]
            starts = [j for j in range(1, len(seq)) if seq[j] == self.colon and seq[j - 1] == self.user]

            def add(kind: str, pos: int, targets: list[int], objs: list, sample=sample, r=r) -> None:
                out[kind].append((r, pos, targets, objs, [sample.objects.index(o) + 1 for o in objs]))

            for k, task in enumerate(tasks, start=1):
                if k > len(starts):
                    break
                j, nouns = starts[k - 1] + 1, []
                while j < len(seq) and seq[j] != self.eos:
                    t = seq[j]
                    if t in self.noun or t in self.generic:
                        attrs = {"shape": self.noun[t]} if t in self.noun else {}
                        back = j - 1
                        while back >= 0 and (seq[back] in self.colour or seq[back] in self.size):
                            if seq[back] in self.colour:
                                attrs["colour"] = self.colour[seq[back]]
                            else:
                                attrs["size"] = self.size[seq[back]]
                            back -= 1
                        objs = [o for o in sample.objects if all(getattr(o, a) == v for a, v in attrs.items())]
                        if objs:
                            add("ground", j, [cells[sample.objects.index(o)] for o in objs], objs)
                        add("count", j, [], objs)
                        nouns.append((j, objs))
                    j += 1
                span = (turns[r] == k).nonzero().flatten().tolist()
                if not span:
                    continue
                mentions = [p for p in span if seq[p] in self.colour and p + 1 < len(seq) and seq[p + 1] in self.noun]
                if task.skill == "caption" and task.kind in ("normal", "long"):
                    # Objects are described left to right, each as `<size> <colour> <shape>`: the positions that
                    # predict those three words look at that object's image token (and copy what it says, its
                    # rank included); the position that starts the next description looks back at the previous
                    # one (`recall`), to learn which rank comes next.
                    for m, (p, obj) in enumerate(zip(mentions, sample.objects, strict=False)):
                        for q in (p - 2, p - 1, p):
                            add("locate", q, [cells[sample.objects.index(obj)]], [obj])
                        if m:
                            add("recall", p - 2, [mentions[m - 1]], [sample.objects[m - 1]])
                        # The position that writes what follows the item (`,`, `and`, or the end of the list) looks at
                        # the next object, or at the sequence start when there is none (`next`).
                        end = p + 2  # a normal caption's item ends with its shape word, a long one's with a place
                        if task.kind == "long":
                            end = next((q for q in span if q > p + 1 and seq[q] in self.list_end), end)
                        after = sample.objects[m + 1 : m + 2]
                        add("next", end - 1, [cells[m + 1]] if after else [0], after)
                elif task.skill == "caption":
                    # A short caption names groups (`two red circles`) in the order of their leftmost member: the
                    # positions that predict a group's words look at all its members.
                    names = list(dict.fromkeys(o.name for o in sample.objects))
                    for m, (p, name) in enumerate(zip(mentions, names, strict=False)):
                        objs = [o for o in sample.objects if o.name == name]
                        for q in (p - 2, p - 1, p):
                            add("locate", q, [cells[sample.objects.index(o)] for o in objs], objs)
                        following = names[m + 1 : m + 2]
                        after = [o for o in sample.objects if o.name in following]
                        add("next", p + 1, [cells[sample.objects.index(o)] for o in after] or [0], after)
                elif task.skill == "query" and nouns:
                    # One noun per head: the answer's first position brings back what the (first) noun names and
                    # how many; a comparison's second noun comes through the `compare` head.
                    (noun, named), *rest = nouns
                    add("route", span[0] - 1, [noun], named)
                    if task.kind == "comparison" and rest:
                        add("compare", span[0] - 1, [rest[0][0]], rest[0][1])
                elif task.skill in ("detect", "point"):
                    # Each box is written from the position before it on; the position after a box's last
                    # location token (and the one that starts the answer) looks at the next match, or at the
                    # sequence start when there is none (`next`, which decides `,` or the end, and `none`).
                    box_starts = [span[0] - 1] + [p for p in span if seq[p] == self.sep]
                    arity = 4 if task.skill == "detect" else 2
                    refs = list(task.refs)
                    first = [sample.objects[refs[0]]] if refs else []
                    add("next", span[0] - 1, [cells[refs[0]]] if refs else [0], first)
                    for m, (p, i) in enumerate(zip(box_starts, refs, strict=False)):
                        for d in range(arity):
                            add("locate", p + d, [cells[i]], [sample.objects[i]])
                        if m:
                            add("recall", p, [box_starts[m - 1] + arity - 1], [sample.objects[refs[m - 1]]])
                        later = refs[m + 1 : m + 2]
                        add("next", p + arity, [cells[a] for a in later] or [0], [sample.objects[a] for a in later])
        return out


def head_losses(
    attn, captured: dict, targets, head: int, attention_mask: torch.Tensor, embeddings: torch.Tensor, classes, box_head,
    count_readout: Callable[[torch.Tensor], torch.Tensor] | None = None, name_words: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """For one head of one language-model layer: (-log of the attention mass it puts on the target positions,
    loss of what it brings back). What it brings back (its output through o_proj) must name the colour, shape
    and size of the objects named (scored against the word embeddings, as the tied output layer does), and,
    for a single object, its location tokens, its rank and its box (through `box_head`, training only).
    With `count_readout` (head output -> logits over 0..MAX_OBJECTS), it must also say how many objects are
    named; `name_words=False` keeps only that (and the attention loss)."""
    from transformers.models.llama.modeling_llama import rotate_half

    zero = embeddings.new_zeros((), dtype=torch.float32)
    if not targets:
        return zero, zero
    # Only the target positions' queries are needed: score them against every key of their row.
    h = captured["hidden_states"].float()
    cos, sin = (t.float().expand(h.shape[0], -1, -1) for t in captured["position_embeddings"])
    hd = attn.head_dim
    kv = head // (attn.config.num_attention_heads // attn.config.num_key_value_heads)
    rows = torch.tensor([t[0] for t in targets], device=h.device)
    pos = torch.tensor([t[1] for t in targets], device=h.device)
    q = h[rows, pos] @ attn.q_proj.weight.float()[head * hd : (head + 1) * hd].T  # targets, head_dim
    q = q * cos[rows, pos] + rotate_half(q) * sin[rows, pos]
    k = h @ attn.k_proj.weight.float()[kv * hd : (kv + 1) * hd].T
    k = k * cos + rotate_half(k) * sin
    v = h @ attn.v_proj.weight.float()[kv * hd : (kv + 1) * hd].T
    scores = torch.einsum("nd,nsd->ns", q, k[rows]) * attn.scaling  # targets, seq
    keys = torch.arange(h.shape[1], device=h.device)
    scores = scores.masked_fill((keys[None] > pos[:, None]) | (attention_mask[rows] == 0), float("-inf"))
    logp = scores.log_softmax(-1)
    wanted = torch.zeros_like(logp, dtype=torch.bool)
    for n, (_, _, cells, *_) in enumerate(targets):
        wanted[n, cells] = True
    att = -torch.logsumexp(logp.masked_fill(~wanted, float("-inf")), -1).mean()
    out = (logp.exp()[:, None, :] @ v[rows])[:, 0] @ attn.o_proj.weight.float()[:, head * hd : (head + 1) * hd].T
    value = zero
    if count_readout is not None:
        counts = torch.tensor([len(t[3]) for t in targets], device=h.device)
        value = value + F.cross_entropy(count_readout(out), counts)
    if not name_words:
        return att, value
    for a, (attr, ids) in enumerate(zip(("colour", "shape", "size"), classes[:3], strict=True)):
        labels = []
        for *_, objs, _ in targets:
            vals = {getattr(o, attr) for o in objs}
            labels.append(1 + _VALUES[a].index(vals.pop()) if len(vals) == 1 else -100)
        lab = torch.tensor(labels, device=h.device)
        if (lab >= 0).any():
            value = value + F.cross_entropy(out @ embeddings[ids].float().T, lab, ignore_index=-100)
    single = [i for i, t in enumerate(targets) if len(t[3]) == 1]
    if single and len(classes) > 3:
        # A single object: what the head brings back must also read as its location tokens and its rank.
        n_loc = len(LOCATION_FAMILIES)
        bins = torch.tensor([location_bins(targets[i][3][0].box) for i in single], device=h.device)
        for ids, b in zip(classes[3 : 3 + n_loc], bins.T, strict=True):
            lab = b + 1
            value = value + F.cross_entropy(out[single] @ embeddings[ids].float().T, lab) / 4
        if len(classes) > 3 + n_loc:
            ranks = torch.tensor([targets[i][4][0] for i in single], device=h.device)
            value = value + F.cross_entropy(out[single] @ embeddings[classes[3 + n_loc]].float().T, ranks)
    if single and box_head is not None:
        boxes = torch.tensor([targets[i][3][0].box for i in single], device=h.device, dtype=torch.float32)
        value = value + 10 * F.smooth_l1_loss(box_head(out[single]), boxes, beta=0.02)
    return att, value


def count_loss(probe: nn.Module, hidden: torch.Tensor, targets) -> torch.Tensor:
    """How many objects each referring noun names (0..MAX_OBJECTS), read by a linear `probe` (training only) from
    `hidden`, the hidden states after the `ground` layer: a head's output is a weighted mean of what it looks at,
    which says what the matches are but not how many, so the layer's MLP must turn it into a number (that the
    `route` head then carries to the answer)."""
    if not targets:
        return hidden.new_zeros((), dtype=torch.float32)
    rows = torch.tensor([t[0] for t in targets], device=hidden.device)
    pos = torch.tensor([t[1] for t in targets], device=hidden.device)
    counts = torch.tensor([len(t[3]) for t in targets], device=hidden.device)
    return F.cross_entropy(probe(hidden[rows, pos].float()), counts)


@torch.no_grad()
def patch_accuracy(head: AuxHead, vision, processor, samples: list[Sample], grid: int) -> dict[str, float]:
    """Held-out probe of the vision tower: on the patches inside objects, the share whose colour / shape / size
    the auxiliary head reads correctly (chance: 1/6, 1/6, 1/2), likewise their rank from the left and the
    number of objects, and the mean absolute error of the box it regresses. Shows what the image features
    carry, independently of the language model."""
    device = next(vision.parameters()).device
    pixels = processor.image_processor([[s.image] for s in samples], return_tensors="pt")["pixel_values"][:, 0]
    out = head(vision(pixel_values=pixels.to(device)).last_hidden_state.float())
    t = {k: v.to(device) for k, v in patch_targets(samples, grid).items()}
    m = t["mask"]
    a, b, c = N_COLOUR, N_COLOUR + N_SHAPE, N_COLOUR + N_SHAPE + N_SIZE
    d = c + 1 + N_REG
    parts = (("colour", 0, a), ("shape", a, b), ("size", b, c), ("rank", d, d + N_RANK), ("count", d + N_RANK, None))
    acc = {
        name: float((out[..., lo:hi].argmax(-1)[m] == t["cls"][..., k][m]).float().mean())
        for k, (name, lo, hi) in enumerate(parts)
    }
    acc["box_mae"] = float((out[..., c + 1 : d][m][:, :4] - t["reg"][m][:, :4]).abs().mean())
    return acc
