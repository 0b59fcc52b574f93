"""Command line for the default model.

python -m dreamforge.model build --out DIR --seed 0 --minutes 30
python -m dreamforge.model eval --model DIR --split test --n 500
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dreamforge.model", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="train the default model from scratch on the synthetic world and save it")
    b.add_argument("--out", required=True, help="output directory (Hugging Face format)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--minutes", type=float, default=30.0, help="time budget for the training")
    b.add_argument("--eval-n", type=int, default=500, help="held-out test images to evaluate on (0 skips)")
    b.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    b.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    e = sub.add_parser("eval", help="evaluate a saved model on a split of the synthetic world")
    e.add_argument("--model", required=True, help="model directory")
    e.add_argument("--split", default="test", choices=["train", "validation", "test"])
    e.add_argument("--n", type=int, default=500, help="number of images")
    e.add_argument("--start", type=int, default=0, help="first image index")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--device", default=None)
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--out", default=None, help="also write the metrics (JSON) to this file")
    return parser


def main(argv: Sequence[str] | None = None, restart: bool = False) -> int:
    """Run the command; `restart`: this process is the command itself (not a caller's), so a build may
    restart it under jemalloc (`dreamforge.model.malloc`)."""
    args = _parser().parse_args(argv)
    if args.command == "build" and restart:
        from dreamforge.model.malloc import reexec_with_jemalloc

        reexec_with_jemalloc(log=lambda m: print(m, file=sys.stderr, flush=True))
    import torch

    torch.set_num_threads(args.threads)
    if args.command == "build":
        from dreamforge.model.build import build_default_model

        report = build_default_model(
            args.out, seed=args.seed, budget_minutes=args.minutes, eval_n=args.eval_n, device=args.device,
            threads=args.threads, log=lambda m: print(m, file=sys.stderr, flush=True),
        )  # fmt: skip
        print(json.dumps({k: v for k, v in report.get("test", {}).items() if k != "examples"}, indent=2))
        return 0
    from dreamforge.model.evaluate import evaluate
    from dreamforge.model.skills import Skills

    skills = Skills.from_pretrained(args.model, device=args.device)
    result = evaluate(
        skills, split=args.split, n=args.n, start=args.start, batch_size=args.batch_size,
        progress=lambda m: print(m, file=sys.stderr, flush=True),
    )  # fmt: skip
    text = json.dumps(result, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(restart=True))
