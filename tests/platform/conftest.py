"""One running platform (`dreamforge up` from nothing) shared by the platform-level tests."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.platform.harness import Up, platform_env_for, processes_using


@dataclass
class RunningPlatform:
    url: str
    admin_key: str
    env: dict[str, str]


@pytest.fixture(scope="session")
def running_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    home = tmp_path_factory.mktemp("platform") / "home"
    env = platform_env_for(home)
    up = Up(env)
    try:
        up.wait_for("DreamForge is up")
        yield RunningPlatform(f"http://127.0.0.1:{env['DREAMFORGE_GATEWAY_HTTP_PORT']}",
                              (home / "admin-key").read_text().strip(), env)
    finally:
        up.interrupt()
        for line in processes_using(home):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
        assert not processes_using(Path(home))
