"""Training figures per method on the default model: held-out metrics before/after (over seeds),
seconds per step and samples/s — through the same worker process the trainer service runs.

Each seed runs `python -m services.trainer.worker` on a fresh job directory (synthetic train data,
held-out = the synthetic test split), exactly as a job does, and reads its result.json:

    python bench/training_methods.py --method grpo --seeds 0 1 2
    python bench/training_methods.py --method dpo --seeds 0 1 2
    python bench/training_methods.py --method sft --seeds 0 1 2

`--config '{"steps": 40}'` overrides the job config; the reward function (grpo) is by default
"name the colour, be right, be short" on queries; `--reward caption` is the caption reward (name
the colours, say the right objects, in fewer words), the acceptance run (on the current model it
needs the long, gentle schedule):

    python bench/training_methods.py --method grpo --seeds 0 1 2 --reward caption --config \
      '{"skills": ["caption"], "steps": 400, "learning_rate": 5e-4, "temperature": 1.0,
        "max_completion_length": 64, "heldout_images": 64, "train_images": 1024}'

Raters with a house style (dpo/sft): `--config '{"skills": ["caption"], "raters": "concise", ...}'`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.trainer.config import Gate  # noqa: E402
from services.trainer.data import feedback_rows  # noqa: E402
from services.trainer.gate import decide  # noqa: E402
from services.trainer.settings import DEFAULT_MODEL_DIR  # noqa: E402

COLOUR_AND_SHORT = {"terms": [
    {"metric": "colour_mention", "weight": 1.0},
    {"metric": "exact_match", "weight": 1.0},
    {"metric": "output_length", "weight": 0.5, "direction": "minimize", "params": {"max_words": 6}},
]}
#: The caption reward: "answers that name the colour and are short" — name the objects' colours, say the
#: right (colour, shape) pairs, in fewer words (length against 30 words): a caption that shrinks
#: to nothing loses the colour and content terms, so it cannot win by saying nothing.
CAPTION_COLOUR_AND_SHORT = {"terms": [
    {"metric": "colour_mention", "weight": 1.0},
    {"metric": "caption_content_accuracy", "weight": 1.0},
    {"metric": "output_length", "weight": 1.0, "direction": "minimize", "params": {"max_words": 30}},
]}
DEFAULTS: dict[str, dict[str, Any]] = {
    "grpo": {"steps": 30, "prompts_per_step": 4, "num_generations": 8, "learning_rate": 1e-3, "beta": 0.04,
             "train_images": 64, "heldout_images": 32, "temperature": 1.3},
    "dpo": {"steps": 20, "prompts_per_step": 8, "learning_rate": 5e-4, "beta": 0.1, "train_images": 64,
            "heldout_images": 32},
    "sft": {"steps": 20, "prompts_per_step": 8, "learning_rate": 5e-4, "train_images": 64, "heldout_images": 32},
}
PRIMARY = {"grpo": "heldout_reward", "dpo": "preference_win_rate", "sft": "correction_match"}


def run_seed(method: str, seed: int, config: dict[str, Any], eval_images: int, threads: int,
             reward: dict[str, Any]) -> dict[str, Any]:
    job = Path(tempfile.mkdtemp(prefix=f"bench-{method}-{seed}-"))
    cfg = {**config, "seed": seed}
    skills = cfg.get("skills", ["query"])
    rows = feedback_rows(method, cfg["train_images"], skills, seed, cfg.get("raters", "accurate"))
    (job / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (job / "spec.json").write_text(json.dumps({
        "job_id": job.name, "method": method, "base_dir": str(DEFAULT_MODEL_DIR), "parent_adapter": None,
        "reward_function": reward, "config": cfg, "eval_images": eval_images, "memory_mb": 8192,
        "timeout_s": 3600, "threads": threads}))
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "services.trainer.worker", str(job)], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0 or not (job / "result.json").exists():
        events = (job / "events.jsonl").read_text() if (job / "events.jsonl").exists() else ""
        raise SystemExit(f"seed {seed} failed ({proc.returncode}):\n{events[-3000:]}\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads((job / "result.json").read_text())
    result["wall_seconds"] = round(time.time() - started, 1)
    progress = [json.loads(line) for line in (job / "events.jsonl").read_text().splitlines()]
    result["step_times"] = [e for e in progress if e["type"] == "progress"]
    return result


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=sorted(DEFAULTS), default="grpo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--config", default="{}", help="JSON overrides of the job config")
    parser.add_argument("--eval-images", type=int, default=200,
                        help="test images of the skill-metric evaluation (the service's default)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reward", default="", help="reward function JSON (grpo), or 'caption' for the caption "
                        "reward (colour, content, short); default: colour, right, short")
    args = parser.parse_args()
    config = {**DEFAULTS[args.method], **json.loads(args.config)}
    reward = (CAPTION_COLOUR_AND_SHORT if args.reward == "caption" else json.loads(args.reward) if args.reward
              else COLOUR_AND_SHORT)
    results = [run_seed(args.method, seed, config, args.eval_images, args.threads, reward) for seed in args.seeds]
    primary = PRIMARY[args.method]
    keys = [primary, "heldout_reward", "heldout_query_em", "heldout_words", "heldout_caption_words",
            "heldout_caption_content", "query_em", "caption_content",
            "detect_f1", "detect_miou", "point_hit_rate"]
    keys = list(dict.fromkeys(k for k in keys if k in results[0]["eval_before"]))
    print(f"\n{args.method} on {DEFAULT_MODEL_DIR.name}, {platform.machine()} {os.cpu_count()} CPUs, "
          f"threads={args.threads}, seeds={args.seeds}, config={json.dumps(config)}\n")
    print("| metric | before | after | change |\n|---|---|---|---|")
    for k in keys:
        before = [r["eval_before"][k] for r in results]
        after = [r["eval_after"][k] for r in results]
        change = [a - b for a, b in zip(after, before, strict=True)]
        print(f"| {k} | {mean_sd(before)} | {mean_sd(after)} | {mean_sd(change)} |")
    per_step = [r["train_seconds"] / max(r["steps"], 1) for r in results]
    sps = [r["samples_per_second"] for r in results]
    print(f"\nseconds per step: {mean_sd(per_step)}; samples/s: {mean_sd(sps)}; "
          f"job wall time (load + 2 evaluations + training + save): {mean_sd([r['wall_seconds'] for r in results])} s")
    for seed, r in zip(args.seeds, results, strict=True):
        print(f"seed {seed}: " + ", ".join(f"{k} {r['eval_before'][k]:.3f} -> {r['eval_after'][k]:.3f}" for k in keys))
        verdict = decide(args.method, r["eval_before"], r["eval_after"], Gate())  # as the service's default gate
        print(f"seed {seed}: default gate {'promotes' if verdict['passed'] else 'refuses'}"
              + (f" ({'; '.join(verdict['reasons'])})" if verdict["reasons"] else ""))
    for r in results:
        if r.get("warnings"):
            print("warnings:", r["warnings"])


if __name__ == "__main__":
    main()
