"""A training job's worker process: `python -m services.trainer.worker JOB_DIR`.

The trainer service writes `JOB_DIR/spec.json` (and `data.jsonl`), starts this process and
tails `JOB_DIR/events.jsonl`. Why a separate process: training must never pause the gRPC
server or the event consumers, a crash or an out-of-memory kill must take down only the job,
and the OS enforces the limits — the address space (`RLIMIT_AS`, `job_memory_mb`) and the
wall clock (`SIGALRM`, `job_timeout_s`; the service also kills the process group past it).

Sequence: limits -> load the base (and the base version's adapter, if any) -> simulated
raters' feedback on its answers (synthetic dpo/sft data) -> held-out evaluation -> TRL training
with one `progress` event per step -> held-out evaluation -> the adapter saved to
`adapter.partial/` and renamed to `adapter/` -> `result.json` written to a temporary name and
renamed. The service trusts a job's output only when the process exited 0
and `result.json` exists, so a crash at any point leaves nothing it would register.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

EVENTS_FILE = "events.jsonl"
RESULT_FILE = "result.json"
ADAPTER_DIR = "adapter"


class Events:
    """Append-only JSON lines the service tails (flushed per line, so a crash loses nothing written)."""

    def __init__(self, path: Path) -> None:
        self.handle = path.open("a", encoding="utf-8")

    def emit(self, kind: str, **fields: Any) -> None:
        self.handle.write(json.dumps({"type": kind, "at": time.time(), **fields}) + "\n")
        self.handle.flush()


def apply_limits(memory_mb: int, timeout_s: float) -> None:
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.alarm(max(1, int(timeout_s)))


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run(job_dir: Path, events: Events) -> None:
    spec = json.loads((job_dir / "spec.json").read_text())
    apply_limits(int(spec["memory_mb"]), float(spec["timeout_s"]))

    import torch

    from dreamforge.model.skills import Skills, load
    from dreamforge.rewards import parse_reward_function
    from services.trainer.config import parse_config
    from services.trainer.data import SKILLS, rater_feedback, replay_rows, to_trl
    from services.trainer.heldout import answers, evaluate_policy, heldout_sets
    from services.trainer.methods import build_trainer
    from services.trainer.progress import ProgressCallback

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    torch.manual_seed(int(spec["config"].get("seed", 0)))
    method = spec["method"]
    cfg = parse_config(method, spec["config"]).resolved(method)
    reward = parse_reward_function(spec["reward_function"]) if spec.get("reward_function") else None
    started = time.time()

    events.emit("phase", phase="loading")
    model, processor = load(spec["base_dir"])
    peft = True
    if spec.get("parent_adapter"):
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, spec["parent_adapter"], is_trainable=True)
        peft = False
    rows = [json.loads(line) for line in (job_dir / "data.jsonl").read_text().splitlines() if line.strip()]
    heldout, guard = heldout_sets(method, cfg.skills, cfg.heldout_images, cfg.seed + 1, cfg.raters)
    simulated = [r for r in rows if r.get("simulated")]
    if simulated:  # synthetic raters: feedback only where the policy (before training) is wrong
        events.emit("phase", phase="simulating_raters", rows=len(simulated))
        model.eval()
        fed = rater_feedback(method, simulated, answers(Skills(model, processor), simulated))
        rows = [r for r in rows if not r.get("simulated")] + fed
        wrong = sum(1 for r in fed if r.get("corrected"))
        events.emit("feedback", answered=len(simulated), wrong=wrong, rows=len(fed))
    others = [s for s in SKILLS if s not in cfg.skills]
    if method == "sft" and cfg.replay_images and others:  # rehearsal: the other skills' answers, kept
        replay = replay_rows(cfg.replay_images, others, cfg.seed)
        events.emit("phase", phase="replaying", rows=len(replay))
        model.eval()
        rows += [{**r, "target": a} for r, a in zip(replay, answers(Skills(model, processor), replay), strict=True)]
    trl_rows = to_trl(method, rows)
    if not trl_rows:
        raise ValueError("no usable training rows: no buffered event had a retrievable image and the fields "
                         f"{method} needs" + (", and the policy answered every synthetic prompt right (no "
                                              "feedback to learn from)" if simulated else ""))
    events.emit("phase", phase="eval_before")
    before = evaluate_policy(Skills(model, processor), method, reward, heldout, int(spec["eval_images"]),
                             guard)
    events.emit("eval", phase="before", metrics=before)

    events.emit("phase", phase="training", rows=len(trl_rows))
    samples_per_step = cfg.prompts_per_step * (cfg.num_generations if method == "grpo" else 1)
    callback = ProgressCallback(events, cfg.steps, samples_per_step)
    use_cpu = not torch.cuda.is_available()
    trainer = build_trainer(method, model, processor, cfg, trl_rows, reward, job_dir / "trl", callback, use_cpu, peft)
    trainer.train()
    policy = trainer.model
    policy.eval()

    events.emit("phase", phase="eval_after")
    after = evaluate_policy(Skills(policy, processor), method, reward, heldout, int(spec["eval_images"]),
                             guard)
    events.emit("eval", phase="after", metrics=after)

    events.emit("phase", phase="saving")
    partial, final = job_dir / f"{ADAPTER_DIR}.partial", job_dir / ADAPTER_DIR
    shutil.rmtree(partial, ignore_errors=True)
    policy.save_pretrained(str(partial))
    (partial / "README.md").unlink(missing_ok=True)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    write_atomic(job_dir / RESULT_FILE, json.dumps({
        "adapter": ADAPTER_DIR, "eval_before": before, "eval_after": after, "warnings": callback.warnings,
        "steps": callback.last_step, "seconds": round(time.time() - started, 2),
        "train_seconds": round(callback.train_seconds, 2), "samples_per_second": callback.samples_per_second,
        "config": json.loads(cfg.to_json()),
    }))


def main(argv: list[str]) -> int:
    job_dir = Path(argv[1])
    events = Events(job_dir / EVENTS_FILE)
    try:
        run(job_dir, events)
    except MemoryError:
        events.emit("error", reason="the job ran out of memory (job_memory_mb)")
        return 1
    except BaseException as exc:
        events.emit("error", reason=f"{type(exc).__name__}: {exc}"[:2000], trace=traceback.format_exc()[-4000:])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
