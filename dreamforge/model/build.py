"""Build the default model: train a tiny Idefics3 (SmolVLM architecture) from scratch on the synthetic world.

Training has two stages, both reproducible from the seed (model init, training images and tasks):

1. vision warm-up: the vision tower alone learns dense per-patch targets (`dreamforge.model.aux`);
2. the whole model learns the four skills by teacher forcing on multi-turn conversations (one image,
   several user/assistant turns), loss on the answer tokens only, with the dense loss kept as an auxiliary.

Step counts come from the time budget through a fixed calibration (`steps_for_budget`), so the same seed
and budget give the same run on the same device; a hard deadline stops early on a machine much slower than
the calibration (logged, and written to the card). The result is saved with `save_pretrained` (model,
processor, tokenizer), plus `eval.json` (held-out figures) and `README.md` (a model card).
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from dreamforge.model.arch import DEFAULT_SPEC, ModelSpec, build_config, build_model, build_processor
from dreamforge.model.aux import (
    COUNT_WORDS,
    N_RANK,
    AttentionTargets,
    AuxHead,
    alignment_loss,
    aux_loss,
    count_loss,
    head_losses,
    word_ids,
)
from dreamforge.model.data import IGNORE, location_ids, per_turn_loss, training_batch
from dreamforge.model.init import init_location_embeddings, init_vision_tower
from dreamforge.model.tokenizer import build_tokenizer
from dreamforge.world import Sample, get_sample

# The training mix: fewer queries than the world's default (see TrainConfig.mix).
TRAIN_MIX = {"caption": 0.25, "query": 0.3, "detect": 0.225, "point": 0.225}
# Odds of a training scene holding 1, 2, ... 6 objects: crowded scenes, where listing and finding every object
# fail, come up in proportion to their size (the world draws 1-6 equally; evaluation keeps that).
SCENE_WEIGHTS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)

# Seconds per step measured on the reference CPU (2 cores of an AMD EPYC with AVX-512 BF16, torch threads = 2,
# bf16 autocast, a busy machine) for the default spec and batch. On an AVX-512 Xeon without BF16 (fp32, see
# bf16_is_native) short probes on a quiet machine took 0.163 / 0.238 s, i.e. roughly 17-20 minutes for these steps.
CALIBRATION = {"vision_step_s": 0.25, "step_s": 0.40}
VISION_SHARE = 0.25  # share of the budget spent on the vision warm-up


@dataclass
class TrainConfig:
    seed: int = 0
    spec: ModelSpec = DEFAULT_SPEC
    vision_steps: int = 400
    steps: int = 2000
    batch_size: int = 8
    vision_batch_size: int = 32
    turns: int = 6
    lr: float = 3e-3
    vision_lr: float = 2e-3
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.05
    warmup: int = 100
    aux_weight: float = 0.5
    align_weight: float = 1.0
    turn_mean: bool = True
    location_sigma: float = 1.0  # > 0: Gaussian targets over neighbouring location bins; see per_turn_loss
    attn_weight: float = 1.0
    value_weight: float = 0.5
    vision_lr_scale: float = 0.1  # the vision tower's learning rate in stage 2, relative to lr
    curriculum: float = 0.0  # share of the main steps drawn from simpler scenes (1-3 objects)
    # Relative odds of training scenes with 1, 2, ... 6 objects (both stages); None: the world's own (equal).
    scene_weights: tuple[float, ...] | None = SCENE_WEIGHTS
    # Detect / point tasks name an object with odds (number of matches) ** target_power; 0: the world's own.
    # 1 (adopted 2026-12-03): multi-object lists were most of the detect / point error (model README).
    target_power: float = 1.0
    autocast: bool | None = None  # bf16 autocast; None: where the hardware computes bf16 natively (bf16_is_native)
    grad_clip: float = 1.0
    # Layers of the heads that learn where to look (AttentionTargets; see "Supervised attention" in the model's
    # README for why these): `ground` (head 0), `route` (head 0), `recall` (head 1), `next` (head 2) and each
    # `locate` layer (head 1), `compare` (head 3). None: that kind is not supervised.
    ground_layer: int = 1
    route_layer: int = 2
    recall_layer: int | None = 2
    next_layer: int | None = 3
    compare_layer: int | None = 2
    count_weight: float = 0.5  # the number of objects a prompt's noun names, read after the ground layer
    locate_layers: tuple[int, ...] = (1, 3)
    # Skills per training conversation: fewer queries than the world's default mix (query met its target with
    # room to spare; see "Where it stands" in the model's README).
    mix: dict[str, float] = field(default_factory=lambda: dict(TRAIN_MIX))
    threads: int = 2
    device: str | None = None
    deadline_s: float | None = None
    log_every: int = 50
    eval_every: int = 500


def steps_for_budget(minutes: float, cfg: TrainConfig | None = None) -> tuple[int, int]:
    """(vision warm-up steps, main steps) that fit `minutes` on the reference CPU."""
    total = minutes * 60 * 0.9  # keep a margin for saving and the final evaluation
    vision = int(total * VISION_SHARE / CALIBRATION["vision_step_s"])
    main = int(total * (1 - VISION_SHARE) / CALIBRATION["step_s"])
    return max(vision, 10), max(main, 10)


def bf16_is_native(device: torch.device) -> bool:
    """Whether bf16 autocast speeds training up on `device`. It does on a CUDA GPU with bf16 and on a CPU with
    AVX-512 BF16 or AMX (~15-20 % faster steps measured on an AMD EPYC); elsewhere the CPU emulates bf16 and
    steps get slower (2.4x measured on an AVX-512 Xeon without BF16: 0.59 vs 0.24 s per main step)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private torch.cpu helpers (torch >= 2.3)
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def _lr(step: int, total: int, peak: float, warmup: int, min_ratio: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = (step - warmup) / max(total - warmup, 1)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


class _Stream:
    """The training stream: train-split samples from a seed-dependent offset, tasks drawn with its own rng."""

    def __init__(self, seed: int, image_size: int, scene_weights: tuple[float, ...] | None) -> None:
        self.next_index = (seed % 20) * 50_000_000
        self.rng = np.random.default_rng([seed, 1])
        self.image_size = image_size
        self.scene_weights = scene_weights

    def samples(self, n: int, max_objects: int = 6) -> list[Sample]:
        out = [
            get_sample("train", self.next_index + i, self.image_size, max_objects, self.scene_weights) for i in range(n)
        ]
        self.next_index += n
        return out


T = TypeVar("T")


def prefetch(make: Callable[[int], T], n: int, depth: int = 2) -> Iterator[T]:
    """Yield make(0), make(1), ... make(n - 1), each computed up to `depth` items ahead in a background thread.

    Why: a training batch (rendering scenes, drawing tasks, tokenising, attention targets) is Python work that
    holds the GIL, while the model's backward pass releases it, so the two overlap. The calls are the same and
    in the same order as inline, so the batches (and the trained model) are too. Leaving the loop early (the
    deadline) stops the thread."""
    items: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for i in range(n):
                if not offer(make(i)):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            offer(_Failed(exc))

    thread = threading.Thread(target=run, daemon=True, name="training-batches")
    thread.start()
    try:
        for _ in range(n):
            item = items.get()
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


@dataclass
class _Failed:
    error: BaseException


def train(model, processor, cfg: TrainConfig, log: Callable[[str], None] = print, head: AuxHead | None = None) -> dict:
    """Train `model` in place; returns the history (losses, steps, seconds, stopped_early)."""
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(device).train()
    autocast = bf16_is_native(device) if cfg.autocast is None else cfg.autocast
    spec = cfg.spec
    grid = spec.image_size // spec.patch_size
    head = (head or AuxHead(spec.vision_hidden)).to(device)
    stream = _Stream(cfg.seed, spec.image_size, cfg.scene_weights)
    captured: dict[str, Any] = {}  # hook outputs: tensors, and the attention layers' call kwargs
    hooks = [
        model.model.vision_model.post_layernorm.register_forward_hook(lambda m, i, o: captured.__setitem__("v", o)),
        model.model.connector.register_forward_hook(lambda m, i, o: captured.__setitem__("c", o)),
    ]
    token_grid = grid // spec.scale_factor
    layers = model.model.text_model.layers
    # (kind of attention target, layer, head) for every supervised head; see AttentionTargets.
    last = len(layers) - 1
    route = min(cfg.route_layer, last)  # a shallower model keeps the order: ground below route
    supervised = [("ground", max(min(cfg.ground_layer, route - 1), 0), 0), ("route", route, 0)]
    locate = sorted({min(li, last) for li in cfg.locate_layers})
    supervised += [("locate", li, 1) for li in locate]
    if cfg.recall_layer is not None and min(cfg.recall_layer, last) not in locate:  # one kind per head
        supervised.append(("recall", min(cfg.recall_layer, last), 1))
    heads = model.config.text_config.num_attention_heads
    if cfg.next_layer is not None and heads > 2:
        supervised.append(("next", min(cfg.next_layer, last), 2))
    if cfg.compare_layer is not None and heads > 3:
        supervised.append(("compare", min(cfg.compare_layer, last), 3))
    for li in {li for _, li, _ in supervised}:
        hooks.append(
            layers[li].self_attn.register_forward_pre_hook(
                lambda m, a, kw, li=li: captured.__setitem__(f"attn{li}", kw), with_kwargs=True
            )
        )
    tok = processor.tokenizer
    attention_targets = AttentionTargets(tok, model.config.image_token_id, token_grid)
    classes = word_ids(tok)
    locations = location_ids(tok).to(device)
    # Training-only readouts: a single object's box, the number a noun names (after the ground layer), the
    # second count of a comparison (the first reads as the answer's own `0`..`6` words).
    box_head = torch.nn.Linear(spec.text_hidden, 4).to(device)
    count_probe = torch.nn.Linear(spec.text_hidden, N_RANK).to(device)
    compare_probe = torch.nn.Linear(spec.text_hidden, N_RANK).to(device)
    count_ids = torch.tensor(tok.convert_tokens_to_ids(list(COUNT_WORDS)), device=device)
    readouts: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "route": lambda out: out @ model.get_input_embeddings().weight[count_ids].float().T,
        "compare": compare_probe,
    }
    history: dict = {"vision_loss": [], "loss": [], "aux_loss": [], "stopped_early": False, "autocast": autocast}
    t0 = time.time()

    def over_deadline() -> bool:
        return cfg.deadline_s is not None and time.time() - t0 > cfg.deadline_s

    # Stage 1: vision warm-up (vision tower + auxiliary head only).
    vision = model.model.vision_model
    params = list(vision.parameters()) + list(head.parameters())
    if cfg.align_weight:
        params += [*model.model.connector.parameters(), model.get_input_embeddings().weight]
    opt = torch.optim.AdamW(params, lr=cfg.vision_lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))

    def vision_batch(step: int) -> tuple[list[Sample], torch.Tensor]:
        samples = stream.samples(cfg.vision_batch_size)
        return samples, processor.image_processor([[s.image] for s in samples], return_tensors="pt")["pixel_values"]

    for step, (samples, pixels) in enumerate(prefetch(vision_batch, cfg.vision_steps)):
        for g in opt.param_groups:
            g["lr"] = _lr(step, cfg.vision_steps, cfg.vision_lr, min(cfg.warmup, cfg.vision_steps // 5), 0.3)
        pixels = pixels[:, 0].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            features = vision(pixel_values=pixels).last_hidden_state
            image_tokens = model.model.connector(features) if cfg.align_weight else None
        loss = aux_loss(head, features, samples, grid)
        if image_tokens is not None:
            emb = model.get_input_embeddings().weight
            loss = loss + alignment_loss(image_tokens, emb, classes, samples, token_grid)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        history["vision_loss"].append(loss.item())
        if (step + 1) % cfg.log_every == 0:
            recent = np.mean(history["vision_loss"][-cfg.log_every :])
            log(f"vision step {step + 1}/{cfg.vision_steps} loss {recent:.3f}")
        if over_deadline():
            history["stopped_early"] = True
            break
    history["vision_seconds"] = round(time.time() - t0, 1)

    # Stage 2: the whole model on the skills, with the dense loss as an auxiliary.
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    params += [p for m in (box_head, count_probe, compare_probe) for p in m.parameters()]
    in_vision = {id(p) for p in vision.parameters()}
    groups = []
    for is_vision in (False, True):
        for decays in (True, False):
            ps = [p for p in params if (id(p) in in_vision) == is_vision and (p.dim() >= 2) == decays]
            scale = cfg.vision_lr_scale if is_vision else 1.0
            groups.append({"params": ps, "weight_decay": cfg.weight_decay if decays else 0.0, "scale": scale})
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98))
    t1 = time.time()
    for step in range(cfg.steps):
        if history["stopped_early"]:
            break
        for g in opt.param_groups:
            g["lr"] = g["scale"] * _lr(step, cfg.steps, cfg.lr, cfg.warmup, cfg.min_lr_ratio)
        samples = stream.samples(cfg.batch_size, 3 if step < cfg.curriculum * cfg.steps else 6)
        convs = [s.training_tasks(stream.rng, cfg.turns, cfg.mix, cfg.target_power) for s in samples]
        batch = training_batch(processor, [s.image for s in samples], convs).to(device)
        targets = attention_targets(batch, samples, convs) if cfg.attn_weight else {}
        turns, labels = batch.pop("turns"), batch.pop("labels")
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(**batch).logits
        if cfg.turn_mean:
            loss = per_turn_loss(logits, labels, turns, locations, cfg.location_sigma)
        else:
            loss = token_mean_loss(logits, labels)
        history["loss"].append(loss.item())
        if cfg.aux_weight:
            aux = aux_loss(head, captured["v"], samples, grid)
            history["aux_loss"].append(aux.item())
            loss = loss + cfg.aux_weight * aux
        if targets:
            emb = model.get_input_embeddings().weight
            att = value = emb.new_zeros((), dtype=torch.float32)
            for kind, li, hd in supervised:
                a, v = head_losses(
                    layers[li].self_attn, captured[f"attn{li}"], targets[kind], hd, batch["attention_mask"], emb,
                    classes, box_head, readouts.get(kind), name_words=kind != "compare",
                )  # fmt: skip
                att, value = att + a, value + v
            if cfg.count_weight:
                counting = count_loss(count_probe, captured[f"attn{route}"]["hidden_states"], targets["count"])
                history.setdefault("count_loss", []).append(float(counting.detach()))
                loss = loss + cfg.count_weight * counting
            history.setdefault("attn_loss", []).append(float(att.detach()))
            history.setdefault("value_loss", []).append(float(value.detach()))
            loss = loss + cfg.attn_weight * att + cfg.value_weight * value
        if cfg.align_weight:
            emb = model.get_input_embeddings().weight
            align = alignment_loss(captured["c"], emb, classes, samples, token_grid)
            history.setdefault("align_loss", []).append(align.item())
            loss = loss + cfg.align_weight * align
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if (step + 1) % cfg.log_every == 0:
            n = cfg.log_every
            log(
                f"step {step + 1}/{cfg.steps} loss {np.mean(history['loss'][-n:]):.4f} "
                f"aux {np.mean(history['aux_loss'][-n:]) if history['aux_loss'] else 0:.3f} "
                f"align {np.mean(history.get('align_loss', [0])[-n:]):.3f} "
                f"attn {np.mean(history.get('attn_loss', [0])[-n:]):.3f} "
                f"value {np.mean(history.get('value_loss', [0])[-n:]):.3f} "
                f"count {np.mean(history.get('count_loss', [0])[-n:]):.3f} "
                f"{time.time() - t1:.0f}s"
            )
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0:
            acc = teacher_forced_accuracy(model, processor, "validation", 40, by_kind=True)
            history.setdefault("validation", []).append({"step": step + 1, **acc})
            log(f"validation (teacher-forced exact match) at step {step + 1}: {acc}")
        if over_deadline():
            history["stopped_early"] = True
            log(f"deadline reached after {step + 1} steps; stopping early")
    for h in hooks:
        h.remove()
    model.eval()
    history.update(steps_done=len(history["loss"]), seconds=round(time.time() - t0, 1), head=head)
    history["images_seen"] = stream.next_index - (cfg.seed % 20) * 50_000_000
    return history


def token_mean_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE
    )


@torch.no_grad()
def teacher_forced_accuracy(
    model, processor, split: str = "validation", n: int = 100, by_kind: bool = False, mismatch: bool = False
) -> dict[str, float]:
    """Share of evaluation tasks whose whole answer is the argmax under teacher forcing (equal to greedy
    exact match), per skill; cheap enough to watch during training. `mismatch` pairs every task with the
    next sample's image (the truth stays its own): a blind baseline that shows how much of the accuracy
    comes from looking at the image rather than from answer priors."""
    device = next(model.parameters()).device
    size = processor.image_processor.max_image_size["longest_edge"]
    hits: dict[str, list[bool]] = {}
    samples = [get_sample(split, i, size) for i in range(n)]
    images = [s.image for s in samples[1:] + samples[:1]] if mismatch else [s.image for s in samples]
    items = [(im, t) for s, im in zip(samples, images, strict=True) for t in s.eval_tasks()]
    was_training = model.training
    model.eval()
    for b in range(0, len(items), 64):
        chunk = items[b : b + 64]
        batch = training_batch(processor, [im for im, _ in chunk], [[t] for _, t in chunk]).to(device)
        labels = batch.pop("labels")
        batch.pop("turns")
        pred = model(**batch).logits[:, :-1].argmax(-1)
        lab = labels[:, 1:]
        for r, (_, t) in enumerate(chunk):
            m = lab[r] != IGNORE
            ok = bool((pred[r][m] == lab[r][m]).all())
            hits.setdefault(t.skill, []).append(ok)
            if t.skill == "query" and by_kind:
                hits.setdefault(f"query_{t.kind}", []).append(ok)
    model.train(was_training)
    return {k: round(float(np.mean(v)), 4) for k, v in sorted(hits.items())}


def build_default_model(
    out_dir: str | Path,
    seed: int = 0,
    budget_minutes: float = 30,
    spec: ModelSpec = DEFAULT_SPEC,
    eval_n: int = 500,
    device: str | None = None,
    threads: int = 2,
    log: Callable[[str], None] = print,
    **overrides,
) -> dict:
    """Train the default model within about `budget_minutes`, save it to `out_dir`, evaluate it on the
    held-out test split (`eval_n` images; 0 skips) and write `eval.json` and `README.md`. Returns eval.json's
    content. `overrides` set TrainConfig fields (steps, vision_steps, batch_size, lr, ...)."""
    from dreamforge.model.evaluate import evaluate
    from dreamforge.model.skills import Skills

    torch.set_num_threads(threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    vision_steps, steps = steps_for_budget(budget_minutes)
    cfg = TrainConfig(seed=seed, spec=spec, vision_steps=vision_steps, steps=steps, threads=threads, device=device)
    cfg = replace(cfg, **{"deadline_s": budget_minutes * 60 * 1.1, **overrides})
    tokenizer = build_tokenizer()
    processor = build_processor(spec, tokenizer)
    model = build_model(build_config(spec, tokenizer), seed)
    init_vision_tower(model, processor)
    init_location_embeddings(model, tokenizer)
    log(f"building default model: {sum(p.numel() for p in model.parameters()):,} parameters, {cfg}")
    history = train(model, processor, cfg, log)
    model.to("cpu")  # type: ignore[arg-type]  # transformers types `.to` as a wrapped method
    model.save_pretrained(out)
    processor.save_pretrained(out)
    train_seconds = history["seconds"]
    report: dict = {
        "seed": seed,
        "budget_minutes": budget_minutes,
        "train_seconds": train_seconds,
        "device": str(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")),
        "threads": threads,
        # Same seed, same code and the same of these give the same weights; float kernels differ between
        # instruction sets (and bf16 autocast is on only where native), so another CPU gives another model.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "precision": "bf16 autocast" if history["autocast"] else "fp32",
        "parameters": sum(p.numel() for p in model.parameters()),
        "checkpoint_bytes": sum(f.stat().st_size for f in out.iterdir() if f.is_file()),
        "spec": spec.as_dict(),
        "train_config": {k: v for k, v in asdict(cfg).items() if k != "spec"},
        "history": {
            "steps_done": history["steps_done"],
            "images_seen": history["images_seen"],
            "stopped_early": history["stopped_early"],
            "vision_seconds": history["vision_seconds"],
            "validation": history.get("validation", []),
            "first_loss": round(float(np.mean(history["loss"][:20])), 4) if history["loss"] else None,
            "final_loss": round(float(np.mean(history["loss"][-50:])), 4) if history["loss"] else None,
            "loss_curve": [
                round(float(np.mean(history["loss"][i : i + 50])), 4) for i in range(0, len(history["loss"]), 50)
            ],
        },
    }
    if eval_n:
        device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        skills = Skills(model.to(device), processor)  # type: ignore[arg-type]  # as above
        report["test"] = evaluate(skills, split="test", n=eval_n, progress=log)
    report["total_seconds"] = round(time.time() - t0, 1)
    (out / "eval.json").write_text(json.dumps(report, indent=2))
    from dreamforge.model.card import write_card

    write_card(out, report)
    log(f"saved to {out} ({report['checkpoint_bytes'] / 1e6:.1f} MB) in {report['total_seconds']:.0f}s")
    return report
