"""Running `dreamforge up` from a test, as a user would, and finding what it left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from dreamforge.infra import free_ports


def platform_env_for(home: Path) -> dict[str, str]:
    """Environment for an isolated platform: its own home and free ports for everything
    (NATS and Redis included, so they are started from the wheels, as on a fresh machine)."""
    names = ("nats", "redis", "http", "gateway", "registry", "inference", "feedback", "trainer", "billing")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DREAMFORGE_")}
    env.update({
        "DREAMFORGE_HOME": str(home),
        "DREAMFORGE_NATS_URL": f"nats://127.0.0.1:{ports['nats']}",
        "DREAMFORGE_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "DREAMFORGE_GATEWAY_HTTP_PORT": str(ports["http"]),
        "DREAMFORGE_GATEWAY_GRPC_PORT": str(ports["gateway"]),
        **{f"DREAMFORGE_{s.upper()}_PORT": str(ports[s]) for s in
           ("registry", "inference", "feedback", "trainer", "billing")},
    })
    return env


class Up:
    """A running `dreamforge up` process and its output."""

    def __init__(self, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "dreamforge.cli", "up"], env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def wait_for(self, text: str, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not printed; output:\n" + "\n".join(self.lines))
            time.sleep(0.1)

    def interrupt(self, timeout_s: float = 60) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=timeout_s)


def processes_using(home: Path) -> list[str]:
    """Processes whose command line or environment mentions `home` (ours, by construction)."""
    found = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == os.getpid():
            continue
        try:
            blob = (pid_dir / "cmdline").read_bytes() + (pid_dir / "environ").read_bytes()
        except OSError:
            continue
        if str(home).encode() in blob:
            cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ")[:200]
            found.append(f"{pid_dir.name}: {cmdline!r}")
    return found
