"""A finetune's live worker process, driven over JSON lines (see `tuning_worker.py`).

One call at a time per session (a lock), each with a deadline; a worker that dies or hangs is
killed and the next call starts a fresh one from the finetune's latest saved checkpoint (the
steps since that checkpoint are lost, as in any crash, and the finetune's step goes back to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from dreamforge.grpcio import FailedPrecondition, ServiceError

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0


class WorkerError(ServiceError):
    """The session's worker failed a call; the message says why."""


class TuningSession:
    def __init__(self, base_dir: Path, rank: int, adapter: Path | None, threads: int) -> None:
        self.base_dir, self.rank, self.adapter, self.threads = base_dir, rank, adapter, threads
        self.proc: asyncio.subprocess.Process | None = None
        self.lock = asyncio.Lock()
        self._next = 0
        self.last_used = time.monotonic()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def _start(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               "DREAMFORGE_JOB_THREADS": str(self.threads)}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.trainer.tuning_worker", str(self.base_dir), str(self.rank),
            str(self.adapter or ""), cwd=str(ROOT), env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
            limit=64 * 1024 * 1024)
        await self._read(START_TIMEOUT_S)

    async def _read(self, timeout_s: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
        if not line:
            raise FailedPrecondition("the tuning worker exited; the next call restarts it from the last checkpoint")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def call(self, op: str, timeout_s: float = 600.0, **fields: Any) -> Any:
        self.last_used = time.monotonic()
        async with self.lock:
            if not self.alive:
                await self._start()
            assert self.proc is not None and self.proc.stdin is not None
            self._next += 1
            try:
                self.proc.stdin.write((json.dumps({"id": self._next, "op": op, **fields}) + "\n").encode())
                await self.proc.stdin.drain()
                reply = await self._read(timeout_s)
            except (TimeoutError, ConnectionError, BrokenPipeError):
                await self.close()
                raise FailedPrecondition(f"the tuning worker did not answer {op}; it was restarted") from None
            if not reply.get("ok"):
                raise WorkerError(str(reply.get("error", "the tuning worker failed")))
            return reply["result"]

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(Exception):
                await self.proc.wait()
        self.proc = None
