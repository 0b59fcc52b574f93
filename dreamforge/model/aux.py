"""Dense auxiliary supervision for the vision tower (training only; never saved with the model).

Real VLMs start from a pretrained vision encoder. The default model has none, so training gives the
vision tower direct, per-patch targets from the world's ground truth: for every patch whose centre lies
in an object's box, the object's colour, shape and size, its box and centre coordinates, and whether the
object's centre falls in this patch. A linear head reads them from the tower's output, so the features
the connector hands to the language model encode them linearly. The head is dropped after training.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dreamforge.world import COLOURS, SHAPES, Sample

_COLOURS, _SHAPES = list(COLOURS), list(SHAPES)
N_COLOUR, N_SHAPE, N_SIZE = len(_COLOURS) + 1, len(_SHAPES) + 1, 3  # class 0 = background
N_REG = 6  # x_min, y_min, x_max, y_max, x_centre, y_centre


class AuxHead(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden, N_COLOUR + N_SHAPE + N_SIZE + 1 + N_REG)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(features)


def patch_targets(samples: list[Sample], grid: int) -> dict[str, torch.Tensor]:
    n = len(samples)
    cls = np.zeros((n, grid * grid, 3), dtype=np.int64)
    centre = np.zeros((n, grid * grid), dtype=np.float32)
    reg = np.zeros((n, grid * grid, N_REG), dtype=np.float32)
    mask = np.zeros((n, grid * grid), dtype=bool)
    cs = (np.arange(grid) + 0.5) / grid
    for k, s in enumerate(samples):
        for o in s.objects:
            x0, y0, x1, y1 = o.box
            cx, cy = o.centre
            for yy in np.where((cs >= y0) & (cs <= y1))[0]:
                for xx in np.where((cs >= x0) & (cs <= x1))[0]:
                    j = yy * grid + xx
                    cls[k, j] = (_COLOURS.index(o.colour) + 1, _SHAPES.index(o.shape) + 1, 1 + (o.size == "large"))
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
    loss = (
        F.cross_entropy(out[..., :a].reshape(-1, a), t["cls"][..., 0].reshape(-1))
        + F.cross_entropy(out[..., a:b].reshape(-1, N_SHAPE), t["cls"][..., 1].reshape(-1))
        + F.cross_entropy(out[..., b:c].reshape(-1, N_SIZE), t["cls"][..., 2].reshape(-1))
        + F.binary_cross_entropy_with_logits(out[..., c], t["centre"])
    )
    if t["mask"].any():
        loss = loss + 10 * F.smooth_l1_loss(out[..., c + 1 :][t["mask"]], t["reg"][t["mask"]], beta=0.02)
    return loss


def token_targets(samples: list[Sample], grid: int) -> torch.Tensor:
    """Per image token (after pixel shuffle, `grid` x `grid`): class indices (colour, shape, size) of the object
    whose centre lies in the token's cell, 0 where none does."""
    out = np.zeros((len(samples), grid * grid, 3), dtype=np.int64)
    for k, s in enumerate(samples):
        for o in s.objects:
            cx, cy = o.centre
            j = min(int(cy * grid), grid - 1) * grid + min(int(cx * grid), grid - 1)
            out[k, j] = (_COLOURS.index(o.colour) + 1, _SHAPES.index(o.shape) + 1, 1 + (o.size == "large"))
    return torch.from_numpy(out)


def word_ids(tokenizer) -> list[list[int]]:
    """Token ids of the class words: [none, colours...], [none, shapes...], [none, small, large]."""
    ids = tokenizer.convert_tokens_to_ids
    return [
        [ids("none"), *[ids(c) for c in _COLOURS]],
        [ids("none"), *[ids(s) for s in _SHAPES]],
        [ids("none"), ids("small"), ids("large")],
    ]


def alignment_loss(image_tokens: torch.Tensor, embeddings: torch.Tensor, classes: list[list[int]], samples, grid: int):
    """Image tokens (connector output) classified against the language model's own word embeddings, so the
    token at an object's centre looks like `<colour> + <shape> + <size>` to the language model."""
    t = token_targets(samples, grid).to(image_tokens.device)
    loss = image_tokens.new_zeros(())
    for a, ids in enumerate(classes):
        logits = image_tokens.float() @ embeddings[ids].float().T
        loss = loss + F.cross_entropy(logits.reshape(-1, len(ids)), t[..., a].reshape(-1))
    return loss
