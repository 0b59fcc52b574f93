"""A feedback process killed (SIGKILL) between accepting ratings and emitting their reward events
loses nothing and duplicates nothing: the outbox holds the events, the next process publishes them
with their ids as `Nats-Msg-Id`, and JetStream drops a re-publish."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import grpc

from dreamforge.grpcio import channel
from dreamforge.infra import ensure_nats, free_port
from dreamforge.v1 import events_pb2, feedback_pb2, feedback_pb2_grpc
from tests.feedback.conftest import caller, serve, stream_events
from tests.helpers import eventually

ROOT = Path(__file__).parents[2]
N = 12


async def _start(env: dict[str, str]) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.feedback", env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        while True:
            line = await proc.stdout.readline()
            assert line, "feedback exited before it was ready"
            if json.loads(line).get("msg") == "ready":
                break
    asyncio.get_running_loop().create_task(_drain(proc))
    return proc


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    while await proc.stdout.readline():
        pass


async def _kill(proc: asyncio.subprocess.Process) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL


async def _stored(stub: feedback_pb2_grpc.FeedbackServiceStub, request_id: str) -> bool:
    try:
        await stub.GetOutput(feedback_pb2.GetOutputRequest(caller=caller("t_a"), request_id=request_id))
        return True
    except grpc.aio.AioRpcError:
        return False


async def _rated(stub: feedback_pb2_grpc.FeedbackServiceStub) -> list[Any]:
    page = await stub.ListFeedback(feedback_pb2.ListFeedbackRequest(caller=caller("t_a")))
    return list(page.feedback)


async def test_sigkill_between_accept_and_emit_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    nats_port, grpc_port = free_port(), free_port()
    url = f"nats://127.0.0.1:{nats_port}"
    nats_server = ensure_nats(url, tmp_path / "nats")
    env = {**os.environ, "DREAMFORGE_HOME": str(tmp_path / "home"), "DREAMFORGE_NATS_URL": url,
           "DREAMFORGE_FEEDBACK_PORT": str(grpc_port), "DREAMFORGE_LOG_FORMAT": "json"}
    proc = await _start(env)
    try:
        async with channel(f"127.0.0.1:{grpc_port}") as ch:
            stub = feedback_pb2_grpc.FeedbackServiceStub(ch)
            for i in range(2 * N):
                await serve(url, "t_a", f"r{i}", output=f"out {i}")
            await eventually(lambda: _stored(stub, f"r{2 * N - 1}"), timeout_s=20)

            # 1. NATS goes away: ratings are accepted (committed with their events) but cannot be emitted;
            #    then the process dies.
            nats_server.stop()
            accepted = [await stub.SubmitFeedback(feedback_pb2.SubmitFeedbackRequest(
                caller=caller("t_a"), request_id=f"r{i}", kind="score", value_json=str(1 + i % 5)))
                for i in range(N)]
            await _kill(proc)

            # 2. Both come back: the new process publishes what the dead one accepted.
            nats_server = ensure_nats(url, tmp_path / "nats")
            proc = await _start(env)
            await eventually(lambda: _count(url, N), timeout_s=30)

            # 3. Killed while publishing a burst: whatever was committed is emitted exactly once.
            burst = [stub.SubmitFeedback(feedback_pb2.SubmitFeedbackRequest(
                caller=caller("t_a"), request_id=f"r{i}", kind="thumbs", value_json='"up"')) for i in range(N, 2 * N)]
            tasks = [asyncio.ensure_future(c) for c in burst]
            pending: set[asyncio.Future[Any]] = set(tasks)
            while len(tasks) - len(pending) < N // 3:  # kill with some answered, the rest in flight
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            await _kill(proc)
            done = await asyncio.gather(*tasks, return_exceptions=True)
            accepted += [r for r in done if isinstance(r, feedback_pb2.Feedback)]
            proc = await _start(env)
            ratings = await _rated(stub)
            print(f"burst: {len(accepted) - N} of {N} answered before the kill; {len(ratings) - N} committed")
            assert {r.id for r in accepted} <= {r.id for r in ratings}
            await eventually(lambda: _count(url, len(ratings)), timeout_s=30)
            await asyncio.sleep(1.5)  # a late duplicate would show up by now

            events = await stream_events(url, "dreamforge.v1.reward.scored.*")
            per_rating = Counter(e.feedback_id for e in events)
            assert per_rating == Counter({r.id: 1 for r in ratings}), per_rating
            assert len({e.meta.event_id for e in events}) == len(events)
            submitted = await stream_events(url, "dreamforge.v1.feedback.submitted.*", events_pb2.FeedbackSubmitted)
            assert Counter(e.feedback_id for e in submitted) == Counter({r.id: 1 for r in ratings})
            scores = {e.request_id: e.reward for e in events if e.request_id in {f"r{i}" for i in range(N)}}
            assert scores == {f"r{i}": (i % 5) / 4 for i in range(N)}
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
        nats_server.stop()


async def _count(url: str, n: int) -> bool:
    return len(await stream_events(url, "dreamforge.v1.reward.scored.*")) >= n


