"""Requests in flight, so background work can wait for a quiet moment before it runs.

Why: on a small machine the work an answer leaves behind (the outbox relay's pass, then NATS,
billing and feedback consuming its events) competes for the cores with the next request's
generation. Run while no request is in flight, it costs requests nothing; deferred under
steady load, it runs at most `at_most_s` later (bench/RESULTS.md, "Gateway overhead").
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator


class Activity:
    """Counts the requests in flight on one event loop."""

    def __init__(self) -> None:
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._idle_since = time.monotonic()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Marks one request in flight for the `with` block."""
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle_since = time.monotonic()
                self._idle.set()

    async def quiet(self, quiet_s: float, at_most_s: float) -> None:
        """Returns once nothing has been in flight for `quiet_s`, or after `at_most_s` in any case.

        Sleeps on an event while requests run, so waiting costs them no wake-ups."""
        deadline = time.monotonic() + at_most_s
        while (left := deadline - time.monotonic()) > 0:
            if self._in_flight:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), left)
                continue
            idle_for = time.monotonic() - self._idle_since
            if idle_for >= quiet_s:
                return
            await asyncio.sleep(min(quiet_s - idle_for, left))
