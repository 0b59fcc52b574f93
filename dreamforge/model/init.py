"""Data-informed initialisation of the vision tower (weights only; the architecture stays plain Idefics3).

A vision transformer learned from scratch starts slowly; two classic tricks give it a head start:

- the patch embedding (a conv with kernel = stride = patch size) starts as the whitened principal
  components of the world's image patches, so every channel carries a well-scaled, decorrelated view of
  the pixels (mean colour, gradients, ...) from the first step;
- the position embedding starts as a 2-D sine/cosine table, so patches know where they are.
"""

from __future__ import annotations

import math

import torch

from dreamforge.world import get_sample


def patch_pca(processor, patch: int, n_images: int = 200, seed_offset: int = 900_000_000) -> tuple[torch.Tensor, ...]:
    """Mean and principal axes (rows, descending variance) with their standard deviations, of the patches of
    `n_images` train images (from an index range training does not reach)."""
    size = processor.image_processor.max_image_size["longest_edge"]
    images = [get_sample("train", seed_offset + i, size).image for i in range(n_images)]
    pixels = processor.image_processor([[im] for im in images], return_tensors="pt")["pixel_values"][:, 0]
    c = pixels.shape[1]
    patches = pixels.unfold(2, patch, patch).unfold(3, patch, patch)  # b, c, gh, gw, p, p
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * patch * patch).double()
    mean = patches.mean(0)
    cov = torch.cov((patches - mean).T)
    var, vecs = torch.linalg.eigh(cov)
    order = torch.argsort(var, descending=True)
    return mean.float(), vecs[:, order].T.float(), var[order].clamp_min(1e-8).sqrt().float()


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """(grid*grid, dim) table: sin/cos of x in the first half, of y in the second, at geometric frequencies."""
    quarter = dim // 4
    omega = 1.0 / (100.0 ** (torch.arange(quarter, dtype=torch.float32) / max(quarter, 1)))
    ys, xs = torch.meshgrid(
        torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32), indexing="ij"
    )

    def enc(v: torch.Tensor) -> torch.Tensor:
        a = v.reshape(-1, 1) * omega[None]
        return torch.cat([a.sin(), a.cos()], 1)

    table = torch.cat([enc(xs), enc(ys)], 1)
    return torch.nn.functional.pad(table, (0, dim - table.shape[1]))


@torch.no_grad()
def init_vision_tower(model, processor, pos_scale: float = 0.5, n_images: int = 200) -> None:
    emb = model.model.vision_model.embeddings
    conv = emb.patch_embedding
    out_ch, in_ch, p, _ = conv.weight.shape
    mean, axes, std = patch_pca(processor, p, n_images)
    k = min(out_ch, axes.shape[0])
    weight = torch.zeros(out_ch, in_ch * p * p)
    # Whitened, but a floor on the variance keeps pixel-noise directions from being blown up.
    weight[:k] = axes[:k] / (std[:k, None] ** 2 + (0.05 * std[0]) ** 2).sqrt()
    conv.weight.copy_(weight.reshape(out_ch, in_ch, p, p))
    conv.bias.copy_(-(weight @ mean))
    grid = int(emb.num_patches_per_side)
    emb.position_embedding.weight.copy_(sincos_2d(grid, emb.embed_dim) * pos_scale)


@torch.no_grad()
def init_location_embeddings(model, tokenizer, max_cycles: float = 12.0) -> None:
    """Start the location tokens' embeddings (`<x_k>`, `<y_k>`, `<w_k>`, `<h_k>`) as sin/cos of the bin at
    geometric frequencies (up to `max_cycles` per range), each family in its own quarter of the dimensions,
    at the norm of the other embeddings. Neighbouring bins then start with similar embeddings (and, the output
    layer being tied, similar logits), and an image token can carry all four families of an object at once
    without them blurring into each other."""
    from dreamforge.model.data import location_ids

    emb = model.get_input_embeddings().weight
    ids = location_ids(tokenizer).to(emb.device)
    n_fam, n_bins = ids.shape
    dim = emb.shape[1]
    part = dim // n_fam
    freqs = torch.logspace(math.log10(0.25), math.log10(max_cycles), part // 2)
    values = torch.arange(n_bins, dtype=torch.float32) / (n_bins - 1)
    angles = 2 * math.pi * values[:, None] * freqs[None]
    code = torch.cat([angles.sin(), angles.cos()], 1)
    norm = emb.norm(dim=1).mean()
    for f in range(n_fam):
        block = torch.zeros(n_bins, dim)
        block[:, f * part : f * part + code.shape[1]] = code
        emb[ids[f]] = (block / block.norm(dim=1, keepdim=True) * norm).to(emb.dtype)
