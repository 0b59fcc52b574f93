"""Write an untrained checkpoint shaped like a real small VLM, to measure the platform with a model of that size.

The default model is tiny (3.3 M parameters; a query answers in ~15 ms on 2 cores), so every fixed cost of
the platform looks large beside it. A user serving a real checkpoint (SmolVLM-256M, say) pays the same fixed
costs beside a much longer model call. No weights can be downloaded here, so this writes the same
architecture at that checkpoint's published shape with random weights (seeded), the default model's
tokenizer and chat template, and SmolVLM's 512-pixel tiles without image splitting (one tile per image).
It loads through the same code as any checkpoint (`Skills.from_pretrained`, the inference service,
`bench/gateway_overhead.py --model DIR`).

Random weights rarely choose the end-of-sequence token, so every answer runs to its skill's cap
(`dreamforge.model.skills.MAX_NEW_TOKENS`: 16 tokens for a query): the latency of a real model's
answer of that length, not its content.

    python bench/shaped_model.py [--shape smolvlm-256m] [--out /tmp/smolvlm-256m-shaped]
    python bench/gateway_overhead.py --model /tmp/smolvlm-256m-shaped --requests 6   # or: make bench-shaped
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from transformers import AutoTokenizer

from dreamforge.model.arch import ModelSpec, build_config, build_model, build_processor

ROOT = Path(__file__).resolve().parents[1]

# HuggingFaceTB/SmolVLM-256M-Instruct's config.json: SigLIP-base/16 at 512 px (93 M), pixel shuffle 4,
# a 30-layer Llama of width 576 (135 M, its vocabulary of 49,280 replaced by the default tokenizer's).
SHAPES = {
    "smolvlm-256m": ModelSpec(
        image_size=512, patch_size=16, scale_factor=4, vision_hidden=768, vision_layers=12, vision_heads=12,
        vision_mlp=3072, text_hidden=576, text_layers=30, text_heads=9, text_kv_heads=3, text_mlp=1536,
        max_positions=8192,
    ),
}  # fmt: skip


def write(shape: str, out: Path, seed: int = 0) -> int:
    """Write the checkpoint; returns its parameter count."""
    spec = SHAPES[shape]
    tokenizer = AutoTokenizer.from_pretrained(ROOT / "models" / "default")
    model = build_model(build_config(spec, tokenizer), seed)
    model.save_pretrained(out)
    build_processor(spec, tokenizer).save_pretrained(out)
    (out / "shape.json").write_text(json.dumps({"shape": shape, "seed": seed, "trained": False, **spec.as_dict()}))
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="smolvlm-256m")
    parser.add_argument("--out", type=Path, default=Path("/tmp/smolvlm-256m-shaped"))
    args = parser.parse_args()
    n = write(args.shape, args.out)
    print(f"wrote {args.out}: {args.shape} shape, {n / 1e6:.1f} M parameters, random weights")
