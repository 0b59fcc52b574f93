"""`dreamforge up`: the whole platform on one machine, as separate processes.

Starts what is missing (NATS with JetStream and Redis from their wheels when none
answers at the configured URLs), then the six services as child processes, waits
until each reports SERVING on gRPC health (and the gateway's /ready answers),
restarts a service that dies, and on Ctrl-C/SIGTERM stops the services (gateway
first, so no new work comes in), then the infrastructure it started itself.
Everything lives under $DREAMFORGE_HOME, so a second `up` finds the same data.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dreamforge.grpcio import health_status
from dreamforge.infra import ManagedService, die_with_parent, ensure_nats, ensure_redis, port_open
from dreamforge.settings import SERVICES, PlatformSettings

#: Start order: the registry first (others read it), the gateway last (it fronts them).
START_ORDER = ("registry", "inference", "feedback", "trainer", "billing", "gateway")
STOP_ORDER = ("gateway", "inference", "feedback", "trainer", "billing", "registry")


class PlatformError(RuntimeError):
    pass


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff_s: float = 0.5
    log_path: Path = field(default_factory=Path)


class Platform:
    def __init__(self, settings: PlatformSettings, say: Callable[[str], None] = print) -> None:
        self.settings = settings.model_copy(update={"home": settings.home.resolve()})
        self.say = say
        self.infra: list[ManagedService] = []
        self.children = {name: Child(name) for name in START_ORDER}
        self._stopping = False

    @property
    def home(self) -> Path:
        return self.settings.home

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.gateway_http_port}"

    def admin_key(self) -> str:
        return (self.home / "admin-key").read_text().strip()

    # -- start --------------------------------------------------------------------
    async def start(self, timeout_s: float = 90.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(exist_ok=True)
        self._check_ports_free()
        nats = ensure_nats(self.settings.nats_url, self.home)
        self.infra.append(nats)
        self.say(f"nats      {'started' if nats.started else 'found'} at {nats.url}")
        redis = ensure_redis(self.settings.redis_url, self.home)
        self.infra.append(redis)
        self.say(f"redis     {'started' if redis.started else 'found'} at {redis.url}")
        self.settings = self.settings.model_copy(update={"nats_url": nats.url, "redis_url": redis.url})
        for name in START_ORDER:
            self._spawn(self.children[name])
        await self._wait_ready(timeout_s)

    def _check_ports_free(self) -> None:
        ports = {f"{name} gRPC": self.settings.grpc_port(name) for name in SERVICES}
        ports["gateway HTTP"] = self.settings.gateway_http_port
        busy = [f"{what} port {port}" for what, port in ports.items() if port_open(self.settings.host, port)]
        if busy:
            raise PlatformError(
                "already in use: " + ", ".join(busy) + ". Stop what runs there, or choose other ports with "
                "DREAMFORGE_GATEWAY_HTTP_PORT / DREAMFORGE_<SERVICE>_PORT.")

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "DREAMFORGE_HOME": str(self.home),
            "DREAMFORGE_NATS_URL": self.settings.nats_url,
            "DREAMFORGE_REDIS_URL": self.settings.redis_url,
            "DREAMFORGE_HOST": self.settings.host,
            "DREAMFORGE_GATEWAY_HTTP_PORT": str(self.settings.gateway_http_port),
            "PYTHONUNBUFFERED": "1",
        })
        for name in SERVICES:
            key = "DREAMFORGE_GATEWAY_GRPC_PORT" if name == "gateway" else f"DREAMFORGE_{name.upper()}_PORT"
            env[key] = str(self.settings.grpc_port(name))
        return env

    def _spawn(self, child: Child) -> None:
        child.log_path = self.home / "logs" / f"{child.name}.log"
        log = child.log_path.open("ab")
        child.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{child.name}"], env=self._child_env(), stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=die_with_parent)
        log.close()
        child.started_at = time.monotonic()

    async def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(START_ORDER)
        while pending:
            for name in sorted(pending):
                child = self.children[name]
                if child.process is not None and child.process.poll() is not None:
                    raise PlatformError(f"{name} exited with code {child.process.returncode} while starting; "
                                        f"see {child.log_path}:\n{_tail(child.log_path)}")
                if await self._is_ready(name):
                    pending.discard(name)
                    self.say(f"{name:<9} ready on :{self.settings.grpc_port(name)}")
            if pending and time.monotonic() > deadline:
                raise PlatformError(f"not ready after {timeout_s:.0f}s: {', '.join(sorted(pending))}; "
                                    f"logs in {self.home / 'logs'}")
            await asyncio.sleep(0.2)

    async def _is_ready(self, name: str) -> bool:
        target = f"{self.settings.host}:{self.settings.grpc_port(name)}"
        if await health_status(target, timeout_s=0.5) != "SERVING":
            return False
        if name != "gateway":
            return True
        try:
            async with httpx.AsyncClient(timeout=1.0) as client:
                return (await client.get(f"{self.url}/ready")).status_code == 200
        except httpx.HTTPError:
            return False

    # -- supervise ----------------------------------------------------------------
    async def watch(self, stop: asyncio.Event) -> None:
        """Restart any service that dies (with back-off when it keeps dying) until `stop`."""
        while not stop.is_set():
            for child in self.children.values():
                proc = child.process
                if proc is None or proc.poll() is None:
                    continue
                code = proc.returncode
                quick = time.monotonic() - child.started_at < 10
                child.backoff_s = min(child.backoff_s * 2, 10.0) if quick else 0.5
                self.say(f"{child.name} exited with code {code}; restarting in {child.backoff_s:.1f}s")
                child.process = None
                await asyncio.sleep(child.backoff_s)
                if stop.is_set():
                    break
                child.restarts += 1
                self._spawn(child)
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass

    # -- stop ---------------------------------------------------------------------
    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the services in order and wait; SIGKILL what outlives the grace period;
        then stop the infrastructure this platform started. Idempotent."""
        if self._stopping:
            return
        self._stopping = True
        for name in STOP_ORDER:
            proc = self.children[name].process
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for name in STOP_ORDER:
            proc = self.children[name].process
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{name} did not stop within {grace_s:.0f}s; killing it")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for service in reversed(self.infra):
            service.stop()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def run_until_signal(platform: Platform) -> None:
    """`dreamforge up`'s main loop: start, print where to go, supervise, stop on a signal."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await platform.start()
        platform.say("")
        platform.say(f"DreamForge is up: {platform.url}   (API docs: {platform.url}/docs)")
        platform.say(f"Admin key: {platform.admin_key()}   (saved in {platform.home / 'admin-key'})")
        platform.say("Press Ctrl-C to stop.")
        await platform.watch(stop)
    finally:
        platform.say("stopping...")
        await asyncio.to_thread(platform.stop)
        platform.say("stopped")
