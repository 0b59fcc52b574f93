"""Small helpers shared by tests."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from dreamforge.runtime import in_process
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


running_service = in_process  # a real service inside the test's event loop (dreamforge.runtime)


def platform_settings(home: Path, nats_url: str, **overrides: Any) -> PlatformSettings:
    return PlatformSettings(home=home, nats_url=nats_url, log_format="text", **overrides)


def prometheus_value(text: str, name: str, **labels: str) -> float | None:
    """The value of the first series `name` with `labels` in Prometheus's text format (None when absent)."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            return float(match.group(2))
    return None
