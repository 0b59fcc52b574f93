"""uvicorn inside the service runtime: started by an `on_start` hook, drained by `on_stop`.

uvicorn normally installs its own SIGINT/SIGTERM handlers (`Server.capture_signals`,
which swaps them in with `signal.signal` and re-raises the signal after serving). The
runtime owns signals here, so `_EmbeddedServer.capture_signals` is a no-op; shutdown
comes from `stop()`, which sets `should_exit` and awaits uvicorn's own drain (stop
accepting, finish in-flight requests, close WebSockets, lifespan shutdown). uvicorn's
access log is off (the gateway writes its own, with request ids) and API keys in
WebSocket query strings are redacted from uvicorn's handshake log lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import socket
from collections.abc import Iterator

import uvicorn
from litestar import Litestar

log = logging.getLogger("dreamforge.gateway.http")


_SECRET_QUERY = re.compile(r"((?:api_key|apikey|key|token)=)[^&\s\"']+", re.IGNORECASE)


class RedactKeys(logging.Filter):
    """uvicorn logs each WebSocket handshake with its query string, which may hold `?api_key=`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET_QUERY.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def install_redaction() -> None:
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactKeys) for f in logger.filters):
            logger.addFilter(RedactKeys())


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    def __init__(self, app: Litestar, host: str, port: int, grace_s: float = 10.0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.grace_s = grace_s
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind (port 0 picks a free one, then `self.port` says which) and serve in a task."""
        install_redaction()
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this. uvicorn writes a response's head and body separately;
        # with Nagle on, the body waits for the client's delayed ACK (~40 ms on Linux) on every
        # keep-alive request after the first few.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise RuntimeError(f"gateway HTTP cannot bind {self.host}:{self.port}: {exc}") from exc
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, log_config=None, lifespan="on", access_log=False,
            timeout_graceful_shutdown=math.ceil(self.grace_s), server_header=False)
        server = self._server = _EmbeddedServer(config)

        async def serve() -> None:
            try:
                await server.serve(sockets=[sock])
            except SystemExit as exc:  # uvicorn exits the process on startup failure; fail the task instead
                raise RuntimeError(f"gateway HTTP server failed to start (exit {exc.code})") from None
            finally:
                sock.close()

        self._task = asyncio.create_task(serve(), name="gateway-http")
        while not server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("gateway HTTP server stopped during start-up")
            await asyncio.sleep(0.01)
        log.info("http listening", extra={"host": self.host, "port": self.port})

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (up to the grace period), then return."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self.grace_s + 5)
        except TimeoutError:
            self._server.force_exit = True
            await self._task
        log.info("http stopped")
