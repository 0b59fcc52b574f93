"""Runs queued jobs in worker processes: one job per model at a time, at most
`max_concurrent_jobs` overall, oldest first.

For each job: claim its data (buffered rewards, topped up from the synthetic world when too few
are usable), fetch the base version's adapter, write the worker's spec, start
`python -m services.trainer.worker` in its own process group, turn its `progress` lines into
`training.progress` events as they appear, and when it exits 0 with a result: register the
adapter as a new registry version (idempotency key = job id, so a retry never registers twice)
with its config, reward function and both evaluations, then promote it if the gate holds.
Anything else — a crash, an out-of-memory kill, the wall-clock limit, a cancel, a trainer
restart — marks the job failed (or cancelled), registers nothing, and gives its rewards back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Row

from dreamforge.adapters import pack_adapter, unpack_adapter
from dreamforge.v1 import common_pb2, events_pb2
from services.trainer import data as d
from services.trainer.backends import Registry
from services.trainer.buffer import RewardBuffer
from services.trainer.config import parse_config
from services.trainer.gate import decide
from services.trainer.settings import TrainerSettings
from services.trainer.store import JobStore
from services.trainer.worker import ADAPTER_DIR, EVENTS_FILE, RESULT_FILE

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("dreamforge.trainer.runner")
_PROGRESS_FIELDS = ("step", "total_steps", "loss", "reward_mean", "reward_std", "kl", "learning_rate",
                    "samples_per_second", "eta_seconds")


class JobFailed(Exception):
    """A job ended without a result; the message is the reason users see."""


def _caller(row: Row[Any]) -> common_pb2.Caller:
    return common_pb2.Caller(tenant_id=row.tenant_id, key_id="trainer", scopes=["ml"])


class JobRunner:
    def __init__(self, settings: TrainerSettings, store: JobStore, buffer: RewardBuffer, registry: Registry) -> None:
        self.settings = settings
        self.store = store
        self.buffer = buffer
        self.registry = registry
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self._models: dict[str, tuple[str, str]] = {}
        self._cancelled: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    async def recover(self) -> None:
        """Jobs left `running` by a trainer that died: stop their workers, mark them failed."""
        for row in await self.store.running():
            if row.worker_pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(row.worker_pid, signal.SIGKILL)
            await self.store.fail(row, "the trainer stopped while the job ran; nothing was registered",
                                  release=self.buffer.releaser(row.id))
            log.warning("interrupted job marked failed", extra={"job_id": row.id})

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="trainer-jobs")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for job_id in list(self.procs):
            self._kill(job_id, signal.SIGKILL)
        for task in list(self._tasks.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.recover()

    async def cancel(self, job_id: str) -> None:
        """Stop a running job's worker; its task then marks the job cancelled."""
        self._cancelled.add(job_id)
        self._kill(job_id, signal.SIGTERM)

    def _kill(self, job_id: str, sig: int) -> None:
        proc = self.procs.get(job_id)
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)

    # -- scheduling ---------------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            try:
                await self.schedule()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduling failed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)

    async def schedule(self) -> None:
        busy = set(self._models.values())
        for row in await self.store.queue():
            if len(self._tasks) >= self.settings.max_concurrent_jobs:
                return
            if (row.tenant_id, row.model_id) in busy:
                continue
            if not await self.store.mark_running(row.id):
                continue
            busy.add((row.tenant_id, row.model_id))
            self._models[row.id] = (row.tenant_id, row.model_id)
            self._tasks[row.id] = asyncio.create_task(self._run(await self.store.row(row.id)), name=row.id)

    # -- one job ------------------------------------------------------------------------------
    async def _run(self, row: Row[Any]) -> None:
        release = self.buffer.releaser(row.id)
        try:
            job_dir = await self._prepare(row)
            result = await self._supervise(row, job_dir)
            await self._finish(row, job_dir, result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = str(exc) if isinstance(exc, JobFailed) else f"{type(exc).__name__}: {exc}"
            status = "cancelled" if row.id in self._cancelled else "failed"
            if status == "cancelled":
                reason = "cancelled while running; nothing was registered"
            log.warning("training job ended without a version", extra={"job_id": row.id, "reason": reason})
            await self.store.fail(row, reason, status=status, release=release)
        finally:
            self.procs.pop(row.id, None)
            self._models.pop(row.id, None)
            self._tasks.pop(row.id, None)
            self._cancelled.discard(row.id)
            self.wake()

    async def _prepare(self, row: Row[Any]) -> Path:
        method = row.method
        cfg = parse_config(method, row.config_json).resolved(method)
        job_dir = self.settings.jobs_dir / row.id
        job_dir.mkdir(parents=True, exist_ok=True)
        base = await self.registry.base(_caller(row), row.model_id, row.base_version)
        parent = None
        if base.artifact_sha256:
            parent = str(unpack_adapter(await self.registry.artifact(_caller(row), row.model_id, base.version),
                                        job_dir / "parent"))
        rows: list[dict[str, Any]] = []
        if cfg.source == "rewards":
            payloads = await self.buffer.take(row.tenant_id, row.model_id, row.id, limit=cfg.train_images * 8)
            images = str(self.settings.home.resolve() / "images")
            rows = [r for r in (d.rows_from_reward(p, images) for p in payloads) if r is not None and d.load_image(r)]
            # only the job's skills: the held-out evaluation (and so the gate) measures those alone
            rows = [r for r in rows if r["skill"] in cfg.skills]
        if len(rows) < cfg.train_images:  # too few usable events: the synthetic world fills in
            rows += d.feedback_rows(method, cfg.train_images, cfg.skills, cfg.seed, cfg.raters)
        (job_dir / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
        spec = {"job_id": row.id, "method": method, "base_dir": str(self.settings.base_dir(base.base_checkpoint)),
                "parent_adapter": parent, "reward_function": json.loads(row.reward_function_json or "null"),
                "config": json.loads(row.config_json), "eval_images": self.settings.eval_images,
                "memory_mb": self.settings.job_memory_mb, "timeout_s": self.settings.job_timeout_s,
                "threads": self.settings.worker_threads, "base_version": base.version}
        (job_dir / "spec.json").write_text(json.dumps(spec))
        return job_dir

    async def _supervise(self, row: Row[Any], job_dir: Path) -> dict[str, Any]:
        events_path = job_dir / EVENTS_FILE
        events_path.unlink(missing_ok=True)
        (job_dir / RESULT_FILE).unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        with (job_dir / "worker.log").open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.trainer.worker", str(job_dir), cwd=str(ROOT), env=env,
                stdout=out, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True)
        self.procs[row.id] = proc
        await self.store.set_pid(row.id, proc.pid)
        if row.id in self._cancelled:
            self._kill(row.id, signal.SIGTERM)
        offset, error = 0, ""
        deadline = asyncio.get_running_loop().time() + self.settings.job_timeout_s + 30
        while True:
            done = proc.returncode is not None
            offset, error = await self._drain(row, events_path, offset, error)
            if done:
                break
            if asyncio.get_running_loop().time() > deadline:
                self._kill(row.id, signal.SIGKILL)
                error = error or f"the job ran past its wall-clock limit ({self.settings.job_timeout_s:g} s)"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.5)
        rc = proc.returncode
        if rc == 0 and (job_dir / RESULT_FILE).is_file():
            result: dict[str, Any] = json.loads((job_dir / RESULT_FILE).read_text())
            return result
        if not error:
            error = (f"the worker was killed by signal {signal.Signals(-rc).name}" if rc and rc < 0
                     else f"the worker exited with code {rc} without a result")
            if rc == -signal.SIGKILL:
                error += " (out of memory, or stopped)"
        raise JobFailed(error)

    async def _drain(self, row: Row[Any], path: Path, offset: int, error: str) -> tuple[int, str]:
        """Publish the progress lines written since `offset`; remember an error line's reason."""
        chunk = _read_from(path, offset)
        end = chunk.rfind(b"\n") + 1
        for line in chunk[:end].splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("type") == "progress":
                await self.store.record_progress(row, events_pb2.TrainingProgress(
                    **{k: event[k] for k in _PROGRESS_FIELDS if k in event}))
            elif event.get("type") == "error":
                error = str(event.get("reason", "the worker failed"))
        return offset + end, error

    async def _finish(self, row: Row[Any], job_dir: Path, result: dict[str, Any]) -> None:
        cfg = parse_config(row.method, row.config_json).resolved(row.method)
        before, after = result["eval_before"], result["eval_after"]
        verdict = decide(row.method, before, after, cfg.gate)
        verdict["warnings"] = result.get("warnings", [])
        spec = json.loads((job_dir / "spec.json").read_text())
        metrics = {**{f"before.{k}": float(v) for k, v in before.items()},
                   **{f"after.{k}": float(v) for k, v in after.items()}}
        training = {"job_id": row.id, "method": row.method, "config": result.get("config", {}),
                    "steps": result.get("steps"), "train_seconds": result.get("train_seconds"),
                    "samples_per_second": result.get("samples_per_second"), "trigger": row.trigger,
                    "reward_function_id": row.reward_function_id,
                    "reward_function_version": row.reward_function_version, "gate": verdict}
        version = await self.registry.create_version(
            _caller(row), row.model_id, parent_version=int(spec.get("base_version", 0)),
            artifact=pack_adapter(job_dir / ADAPTER_DIR), training_config_json=json.dumps(training),
            reward_function_json=row.reward_function_json, eval_metrics=metrics,
            notes=f"{row.method} job {row.id}: gate {'passed' if verdict['passed'] else 'held'}; "
                  + "; ".join(verdict["reasons"]), idempotency_key=row.id)
        promoted = False
        if verdict["passed"] and cfg.gate.promote:
            await self.registry.promote(_caller(row), row.model_id, version.version, cfg.gate.alias)
            promoted = True
        await self.store.succeed(row, version.version, promoted, verdict, before, after)
        log.info("training job registered a version", extra={"job_id": row.id, "version": version.version,
                                                               "promoted": promoted})


def _read_from(path: Path, offset: int) -> bytes:
    """What was appended to `path` after `offset` (b"" while the file does not exist yet)."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read()
    except FileNotFoundError:
        return b""
