"""Decoding: greedy next to beam search on the default model, same images, same run.

Why: `dreamforge.model.skills.NUM_BEAMS` / `LENGTH_PENALTY` decode whole caption / detect / point answers
with length-normalised beams, because listing objects goes wrong mostly by skipping or repeating one; this
prints what that buys and what it costs, so the choice can be re-checked on a new checkpoint.

  (a) quality   the held-out metrics (`dreamforge.model.evaluate`) on the validation split with every
                skill greedy, then with each BEAMS:LENGTH_PENALTY setting (query stays greedy in every row)
  (b) latency   one request at a time, per skill, greedy vs as served: p50 / p99

    python bench/decoding.py [--model models/default] [--images 500] [--settings 2:1 2:3 4:3] [--requests 40]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
from benchlib import pct

from dreamforge.model.evaluate import evaluate
from dreamforge.model.skills import LENGTH_PENALTY, MAX_NEW_TOKENS, NUM_BEAMS, Skills
from dreamforge.world import caption_prompt, detect_prompt, get_sample, point_prompt

METRICS = ("query_em", "caption_content", "detect_miou", "detect_f1", "point_hit_rate", "point_precision")


def quality(skills: Skills, beams: int, length_penalty: float, n: int) -> dict[str, float]:
    """Validation metrics with caption / detect / point decoded with `beams` beams (1 = greedy)."""
    per_skill = {skill: (beams if served > 1 else 1) for skill, served in NUM_BEAMS.items()}
    skills.length_penalty = length_penalty
    try:
        result = evaluate(skills, split="validation", n=n, batch_size=32, beams=per_skill)
    finally:
        skills.length_penalty = LENGTH_PENALTY
    return {k: result[k] for k in METRICS} | {"seconds": result["seconds"]}


def latency(skills: Skills, skill: str, beams: int, n: int) -> tuple[float, float]:
    times = []
    for i in range(n):
        sample = get_sample("validation", i)
        prompt = {"caption": caption_prompt("normal"), "detect": detect_prompt(sample.objects[0].name),
                  "point": point_prompt(sample.objects[0].name)}[skill]
        t0 = time.perf_counter()
        skills.generate([sample.image], [prompt], MAX_NEW_TOKENS[skill], beams)
        times.append(time.perf_counter() - t0)
    return pct(times, 0.5), pct(times, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/default"))
    parser.add_argument("--images", type=int, default=500, help="validation images for (a)")
    parser.add_argument("--settings", nargs="+", default=["2:1", "2:3", "4:3"], help="BEAMS:LENGTH_PENALTY")
    parser.add_argument("--requests", type=int, default=40, help="requests per cell for (b)")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("DREAMFORGE_THREADS", "2")))
    skills = Skills.from_pretrained(args.model, device="cpu")
    print(f"# Decoding — model {args.model}, {platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; served: beams {NUM_BEAMS}, length penalty {LENGTH_PENALTY}\n")
    print(f"(a) validation split, {args.images} images, batches of 32")
    print(f"{'beams:lp':<10}" + "".join(f"{m:>17}" for m in METRICS) + f"{'seconds':>10}")
    for setting in ["1:1", *args.settings]:
        beams, length_penalty = setting.split(":")
        row = quality(skills, int(beams), float(length_penalty), args.images)
        print(f"{setting:<10}" + "".join(f"{100 * row[m]:>16.1f}%" for m in METRICS) + f"{row['seconds']:>10.0f}")
    print(f"\n(b) one request at a time, {args.requests} per cell, ms")
    print(f"{'skill':<10}{'greedy p50':>12}{'p99':>8}{'beams':>8}{'p50':>8}{'p99':>8}")
    for skill in ("caption", "detect", "point"):
        greedy = latency(skills, skill, 1, args.requests)
        beamed = latency(skills, skill, NUM_BEAMS[skill], args.requests)
        print(f"{skill:<10}{greedy[0]:>12.1f}{greedy[1]:>8.1f}{NUM_BEAMS[skill]:>8}{beamed[0]:>8.1f}{beamed[1]:>8.1f}")


if __name__ == "__main__":
    main()
