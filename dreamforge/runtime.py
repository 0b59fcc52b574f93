"""The lifecycle every service shares: start, become ready, serve, drain, stop.

    runtime = ServiceRuntime("billing", settings, migrations=MIGRATIONS)
    runtime.add_servicer(add_BillingServiceServicer_to_server, servicer, "dreamforge.v1.BillingService")
    runtime.bus.subscribe(USAGE_RECORDED, handler)
    await runtime.run()

Order on start: the gRPC server comes up at once with health NOT_SERVING (so
liveness answers while dependencies are awaited), then the database is migrated
and NATS connected (each retried until it answers), `on_start` hooks run,
consumers start, and health flips to SERVING: readiness means "dependencies
answer". On SIGTERM/SIGINT: health NOT_SERVING, the gRPC server stops taking calls
and finishes in-flight ones within the grace period, consumers finish the message
in hand, `on_stop` hooks run (newest first), connections close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from dreamforge.bus import EventBus
from dreamforge.db import Database, Migration
from dreamforge.grpcio import service_interceptors
from dreamforge.logging import configure_logging
from dreamforge.metrics import configure_metrics
from dreamforge.settings import PlatformSettings
from dreamforge.tracing import configure_tracing

Hook = Callable[[], Awaitable[None]]


SettingsT = TypeVar("SettingsT", bound=PlatformSettings)


class ServiceRuntime:
    def __init__(
        self,
        name: str,
        settings: PlatformSettings,
        *,
        migrations: Sequence[Migration] = (),
        port: int | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.log = logging.getLogger(f"dreamforge.{name}")
        self.db = Database(settings.database_url_for(name), name)
        self.migrations = list(migrations)
        self.bus = EventBus(settings.nats_url, name, max_deliveries=settings.max_deliveries)
        self.port = port if port is not None else settings.grpc_port(name)
        #: Largest gRPC request this service accepts (a service receiving artifacts raises it).
        self.max_receive_message_bytes = 64 * 1024 * 1024
        self.server: grpc.aio.Server | None = None
        self.health = HealthServicer()
        self._servicers: list[tuple[Callable[[Any, grpc.aio.Server], None], Any]] = []
        self._service_names: list[str] = []
        self._on_start: list[Hook] = []
        self._on_stop: list[Hook] = []
        self._stop = asyncio.Event()
        self.ready = False
        #: What the service's build() returned (its domain objects), for tests and tools.
        self.state: Any = None

    # -- wiring -------------------------------------------------------------------

    def settings_as(self, cls: type[SettingsT]) -> SettingsT:
        """The settings as the service's own class (`cls` adds its fields to the platform's): a runtime
        built from plain PlatformSettings (the supervisor, a test) gets the defaults and environment."""
        if isinstance(self.settings, cls):
            return self.settings
        return cls(**self.settings.model_dump())

    def add_servicer(self, add_fn: Callable[[Any, grpc.aio.Server], None], servicer: Any, full_name: str) -> None:
        """Register a servicer; the server is built on start, with the options set by then."""
        self._servicers.append((add_fn, servicer))
        self._service_names.append(full_name)

    def on_start(self, hook: Hook) -> None:
        self._on_start.append(hook)

    def on_stop(self, hook: Hook) -> None:
        self._on_stop.append(hook)

    def request_stop(self) -> None:
        self._stop.set()

    # -- lifecycle ----------------------------------------------------------------
    async def run(self, handle_signals: bool = True) -> None:
        """Serve until SIGTERM/SIGINT (or `request_stop()` when run inside another program)."""
        self.log.info("starting", extra={"settings": self.settings.masked(), "port": self.port})
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        await self._start_grpc()
        try:
            await self._await_dependencies()
            for hook in self._on_start:
                await hook()
            await self.bus.start()
            await self._set_serving(True)
            self.ready = True
            self.log.info("ready", extra={"port": self.port})
            await self._stop.wait()
        finally:
            await self._shutdown()

    async def _start_grpc(self) -> None:
        self.server = grpc.aio.server(
            interceptors=service_interceptors(),
            # No SO_REUSEPORT (gRPC's default on Linux): a second server on a taken port must fail
            # at bind, not silently share it and have the kernel hand it half the connections.
            options=[("grpc.max_receive_message_length", self.max_receive_message_bytes),
                     ("grpc.so_reuseport", 0)])
        for add_fn, servicer in self._servicers:
            add_fn(servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [*self._service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                 reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, self.server)
        await self._set_serving(False)
        address = f"{self.settings.host}:{self.port}"
        cause: RuntimeError | None = None
        try:
            bound = self.server.add_insecure_port(address)
        except RuntimeError as exc:  # grpcio raises where older releases returned 0
            bound, cause = 0, exc
        if bound == 0:
            variable = f"DREAMFORGE_{self.settings.grpc_port_field(self.name).upper()}"
            raise RuntimeError(f"{self.name}: cannot bind {address}: is another process listening there? "
                               f"Stop it or choose another port with {variable}") from cause
        self.port = bound
        await self.server.start()

    async def _await_dependencies(self) -> None:
        await _retry(self.log, "database", lambda: self.db.migrate(self.migrations), self._stop)
        await _retry(self.log, "nats", self.bus.connect, self._stop)

    async def _set_serving(self, serving: bool) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ["", *self._service_names]:
            await self.health.set(name, status)

    async def _shutdown(self) -> None:
        self.log.info("stopping: draining in-flight work")
        self.ready = False
        await self._set_serving(False)
        if self.server is not None:
            await self.server.stop(self.settings.shutdown_grace_s)
        await self.bus.stop_consuming()
        for hook in reversed(self._on_stop):
            try:
                await hook()
            except Exception:
                self.log.exception("stop hook failed")
        await self.bus.close()
        await self.db.close()
        self.log.info("stopped")


async def _retry(log: logging.Logger, what: str, fn: Callable[[], Awaitable[Any]], stop: asyncio.Event) -> None:
    """Call `fn` until it succeeds (dependencies may start after us), unless stopping."""
    delay = 0.2
    while True:
        try:
            await fn()
            return
        except Exception as exc:
            if stop.is_set():
                raise
            log.warning("waiting for dependency", extra={"dependency": what, "error": repr(exc), "retry_in_s": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def service_main(name: str, settings: PlatformSettings, build: Callable[[ServiceRuntime], Awaitable[Any]],
                 *, spawns_children: bool = False) -> None:
    """Entry point of `python -m services.<name>`: logs, tracing, then the runtime.

    `spawns_children`: the service starts processes with asyncio's subprocess API (the trainer's
    workers); it then runs on asyncio's own loop, not uvloop (see `event_loop_factory`)."""
    configure_logging(name, settings.log_level, settings.log_format)
    configure_tracing(name, settings.otlp_endpoint, trace_file=settings.trace_file)
    configure_metrics(name, settings.metrics_port, settings.host)

    async def main() -> None:
        runtime = ServiceRuntime(name, settings)
        runtime.state = await build(runtime)
        await runtime.run()

    with asyncio.Runner(loop_factory=None if spawns_children else event_loop_factory()) as runner:
        runner.run(main())


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (Linux, macOS), else asyncio's own loop.

    Why: every request crosses several event loops (gateway HTTP, gRPC to inference, NATS to
    billing and feedback); uvloop's cheaper socket I/O took 1-1.5 ms off a query's 13-15 ms of
    platform overhead at concurrency 1 on 2 cores (bench/RESULTS.md). grpc.aio, nats-py, redis
    and uvicorn run on any asyncio loop. Not for a service that spawns processes from its loop:
    libuv starts them with fork(), which runs gRPC's fork handlers in the child, and the
    trainer's worker died of SIGSEGV before exec in 4 of 8 test runs (asyncio's loop uses
    vfork/posix_spawn and never did). `subprocess.Popen` is unaffected on either loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


@contextlib.asynccontextmanager
async def in_process(
    name: str, build: Callable[[ServiceRuntime], Awaitable[Any]], settings: PlatformSettings,
    ready_timeout_s: float = 20.0,
) -> AsyncIterator[ServiceRuntime]:
    """Run a real service (its `build` + this runtime, on a free port) inside the caller's event loop,
    ready on entry and drained on exit: how tests and benchmarks run services without processes.
    Port 0 lets the OS pick at bind time (`runtime.port` is the bound one): a port chosen earlier
    could be taken by another process before the server binds it."""
    runtime = ServiceRuntime(name, settings, port=0)
    runtime.state = await build(runtime)
    task = asyncio.create_task(runtime.run(handle_signals=False))
    try:
        deadline = asyncio.get_running_loop().time() + ready_timeout_s
        while not runtime.ready:
            if task.done():
                task.result()
                raise RuntimeError(f"{name} stopped before it was ready")
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{name} not ready after {ready_timeout_s:.0f} s")
            await asyncio.sleep(0.02)
        yield runtime
    finally:
        runtime.request_stop()
        await task
