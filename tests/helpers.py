"""Small helpers shared by tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from dreamforge.infra import free_port
from dreamforge.runtime import ServiceRuntime
from dreamforge.settings import PlatformSettings


async def eventually(check, timeout_s: float = 10.0, interval_s: float = 0.05):  # type: ignore[no-untyped-def]
    """Poll `check()` (sync or async) until it returns a truthy value; fail after `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s: {check}")
        await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def running_service(
    name: str, build: Callable[[ServiceRuntime], Awaitable[Any]], settings: PlatformSettings,
) -> AsyncIterator[ServiceRuntime]:
    """Run a real service (its `build` + the shared runtime) inside the test's event loop."""
    runtime = ServiceRuntime(name, settings, port=free_port())
    runtime.state = await build(runtime)
    task = asyncio.create_task(runtime.run(handle_signals=False))
    try:
        await eventually(lambda: runtime.ready or task.done(), timeout_s=20)
        if task.done():
            task.result()
        yield runtime
    finally:
        runtime.request_stop()
        await task


def platform_settings(home: Path, nats_url: str, **overrides: Any) -> PlatformSettings:
    return PlatformSettings(home=home, nats_url=nats_url, log_format="text", **overrides)
