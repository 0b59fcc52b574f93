"""`dreamforge model build` restarts itself under jemalloc once, when the machine has it (see
`dreamforge.model.malloc` for why), and not at all when told not to."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dreamforge.model.malloc import ENV_SWITCH, find_jemalloc

SCRIPT = (
    "import os\n"
    "from dreamforge.model.malloc import reexec_with_jemalloc\n"
    "print('started', flush=True)\n"
    "reexec_with_jemalloc(log=print)\n"
    "print('preload', os.environ.get('LD_PRELOAD', ''), flush=True)\n"
)


def _run(**env: str) -> list[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", ENV_SWITCH)}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env={**base, **env}, capture_output=True, text=True, check=True
    )
    return out.stdout.splitlines()


@pytest.mark.skipif(find_jemalloc() is None or not sys.platform.startswith("linux"), reason="no libjemalloc here")
def test_restarts_once_under_jemalloc() -> None:
    lines = _run()
    assert lines.count("started") == 2  # the original process, then the restarted one, and no further restart
    assert lines[-1] == f"preload {find_jemalloc()}"


def test_switched_off_it_runs_as_it_is() -> None:
    assert _run(**{ENV_SWITCH: "0"}) == ["started", "preload "]
