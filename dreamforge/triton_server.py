"""Get a Triton Inference Server binary and run a private one on 127.0.0.1.

Why this module exists: the `triton` model runtime (and its tests and benchmark) must work on a
machine with no Docker and no NGC image. PyPI's `nvidia-pytriton` wheel bundles a complete
Triton server (2.51 in 0.7.0: `pytriton/tritonserver/bin/tritonserver`, the Python backend and a
backend stub per Python version, with its shared libraries in `nvidia_pytriton.libs/`). We never
install that wheel (it pins numpy<2, which would break the project's environment): we download it
once with `pip download --no-deps`, extract only the server, and run the binary ourselves.

Four traps shape `TritonServer`:

* **Which Python the backend stub runs.** The stub embeds the system `libpython3.X.so` in *isolated*
  mode: it ignores PYTHONPATH/PYTHONHOME, finds its prefix by looking `python3` up on PATH, and
  honours a `pyvenv.cfg` next to that `python3`. So we write a tiny virtual environment per server
  (`stub-python/`: pyvenv.cfg, a `bin/python3` link, one `.pth`) whose `.pth` adds, in this order, a
  numpy 1.x (see next point), this interpreter's site-packages (torch, transformers, the editable
  dreamforge) and the repository root, and put its `bin/` first on the server's PATH. Under pyenv,
  LD_LIBRARY_PATH must also point at the interpreter's LIBDIR, or the stub links the OS libpython
  against pyenv's stdlib and models fail with `'_thread.RLock' object has no attribute
  '_recursion_count'`.
* **numpy 2.** Triton 2.51's stub is compiled against the numpy 1.x ABI; under numpy 2 every tensor
  it hands over comes back empty or garbled. The stub therefore gets numpy 1.26 from the cache
  (`stub-site-packages/`), ahead of the project's numpy 2 (torch 2.x runs on either).
* **OpenMP spinning.** torch's OpenMP workers in the stub busy-wait between requests and starve the
  server and its clients on a small machine (10x fewer requests/s measured on 2 cores), so the
  server runs with OMP_WAIT_POLICY=PASSIVE unless the environment says otherwise.
* **Ports and shutdown.** Triton binds 0.0.0.0:8000-8002 by default and does not report port 0
  back, so we pick free ports on 127.0.0.1 and disable metrics; stop waits `--exit-timeout-secs`
  for open client connections, so it is kept short (close clients before stopping anyway).

    home = ensure_triton_binaries()            # downloads ~55 MB once into ~/.cache/dreamforge/triton
    with TritonServer(repo_dir) as server:     # starts, waits until every model is ready
        client = tritonclient.grpc.InferenceServerClient(server.grpc_url)
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from dreamforge.infra import InfraError, free_ports, log_tail

__all__ = [
    "PYTRITON_VERSION",
    "STUB_NUMPY",
    "TritonServer",
    "TritonUnavailable",
    "default_cache_dir",
    "ensure_triton_binaries",
]

PYTRITON_VERSION = "0.7.0"  # bundles Triton Inference Server 2.51
STUB_NUMPY = "numpy==1.26.4"  # newest numpy the 2.51 backend stub's ABI understands
STUB_SITE = "stub-site-packages"
_PY = f"{sys.version_info.major}.{sys.version_info.minor}"
_WHEEL_PREFIXES = (
    "pytriton/tritonserver/bin/",
    "pytriton/tritonserver/backends/",
    "pytriton/tritonserver/caches/",
    f"pytriton/tritonserver/python_backend_stubs/{_PY}/",
    "nvidia_pytriton.libs/",
)
_STUB = "triton_python_backend_stub"


class TritonUnavailable(InfraError):
    """No Triton server binary could be found or fetched; the message says how to get one."""


# ------------------------------------------------------------------------------------- binaries


def default_cache_dir() -> Path:
    """`$DREAMFORGE_TRITON_CACHE`, else `$XDG_CACHE_HOME/dreamforge/triton` (~/.cache/...)."""
    if os.environ.get("DREAMFORGE_TRITON_CACHE"):
        return Path(os.environ["DREAMFORGE_TRITON_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dreamforge" / "triton"


def ensure_triton_binaries(cache_dir: str | Path | None = None) -> Path:
    """The Triton home (`bin/tritonserver`, `backends/python` with the stub for this Python).

    `$DREAMFORGE_TRITON_HOME` names an existing install (e.g. `/opt/tritonserver` in an NGC image)
    and is used as is. Otherwise the pytriton wheel is fetched from PyPI once and extracted under
    `cache_dir`; later calls only check that it is there. Safe to call from several processes."""
    if os.environ.get("DREAMFORGE_TRITON_HOME"):
        home = Path(os.environ["DREAMFORGE_TRITON_HOME"])
        if not (home / "bin" / "tritonserver").is_file():
            raise TritonUnavailable(f"DREAMFORGE_TRITON_HOME={home} has no bin/tritonserver")
        return home
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    target = root / f"nvidia-pytriton-{PYTRITON_VERSION}-py{_PY}"
    home = target / "pytriton" / "tritonserver"
    if _complete(home):
        return home
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".lock"):
        if _complete(home):  # another process finished it while we waited
            return home
        shutil.rmtree(target, ignore_errors=True)
        with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as tmp:
            staging = Path(tmp) / "install"
            wheel = _pip_download(Path(tmp), [f"nvidia-pytriton=={PYTRITON_VERSION}"])
            _extract(wheel, staging)
            backend = staging / "pytriton" / "tritonserver" / "backends" / "python"
            stub = staging / "pytriton" / "tritonserver" / "python_backend_stubs" / _PY / _STUB
            if not stub.is_file():
                raise TritonUnavailable(f"nvidia-pytriton {PYTRITON_VERSION} has no backend stub for Python {_PY}")
            shutil.copy2(stub, backend / _STUB)
            site_dir = staging / "pytriton" / "tritonserver" / STUB_SITE
            _pip_install_target(STUB_NUMPY, site_dir)
            os.rename(staging, target)
    if not _complete(home):
        raise TritonUnavailable(f"the Triton install under {target} is incomplete; delete it and retry")
    return home


def _complete(home: Path) -> bool:
    return all(p.exists() for p in (home / "bin" / "tritonserver", home / "backends" / "python" / _STUB,
                                    home / STUB_SITE / "numpy"))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pip(args: Sequence[str], what: str) -> None:
    argv = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--no-input", "--quiet"]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TritonUnavailable(f"could not fetch {what}: {exc}") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-6:])
        raise TritonUnavailable(
            f"could not fetch {what} from PyPI (is it reachable?):\n{tail}\n"
            "The triton runtime needs a Triton server: run `make triton` where PyPI is reachable (the files are "
            f"cached in {default_cache_dir()}), set DREAMFORGE_TRITON_HOME to an installed Triton "
            "(bin/tritonserver + backends/python), or DREAMFORGE_TRITON_URL to a running server."
        )


def _pip_download(dest: Path, requirement: Sequence[str]) -> Path:
    _pip(["download", "--no-deps", "--only-binary=:all:", "-d", str(dest), *requirement], " ".join(requirement))
    wheels = sorted(dest.glob("nvidia_pytriton-*.whl"))
    if not wheels:
        raise TritonUnavailable(f"pip download left no nvidia_pytriton wheel in {dest}")
    return wheels[0]


def _pip_install_target(requirement: str, target: Path) -> None:
    """Install one wheel (no dependencies) into a plain directory, not into any environment."""
    _pip(["install", "--no-deps", "--only-binary=:all:", "--no-compile", "--target", str(target), requirement],
         requirement)


def _extract(wheel: Path, dest: Path) -> None:
    """Unzip the server's files from the wheel, keeping the executable bits zipfile drops."""
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.is_dir() or not info.filename.startswith(_WHEEL_PREFIXES):
                continue
            path = Path(archive.extract(info, dest))
            mode = (info.external_attr >> 16) & 0o777
            path.chmod((mode or 0o644) | (0o755 if mode & 0o111 or path.suffix == ".so" else 0))


# --------------------------------------------------------------------------------------- server


def stub_python(work_dir: Path, home: Path) -> dict[str, str]:
    """Write `work_dir/stub-python` (a venv-shaped prefix for the backend stub) and return the
    environment variables that make the stub use it (see the module docstring for why)."""
    prefix = work_dir / "stub-python"
    shutil.rmtree(prefix, ignore_errors=True)
    (prefix / "bin").mkdir(parents=True)
    base_exe = Path(getattr(sys, "_base_executable", sys.executable))
    (prefix / "bin" / "python3").symlink_to(base_exe)
    (prefix / "pyvenv.cfg").write_text(
        f"home = {base_exe.parent}\ninclude-system-site-packages = false\n"
        f"version = {'.'.join(map(str, sys.version_info[:3]))}\n"
    )
    site_packages = prefix / "lib" / f"python{_PY}" / "site-packages"
    site_packages.mkdir(parents=True)
    ours = [p for p in dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"]]) if Path(p).is_dir()]
    repo_root = Path(__file__).resolve().parents[1]
    lines = []
    if (home / STUB_SITE).is_dir():
        lines.append(str(home / STUB_SITE))
    lines.append("import site; " + "; ".join(f"site.addsitedir({p!r})" for p in ours))
    lines.append(str(repo_root))
    (site_packages / "dreamforge-stub.pth").write_text("\n".join(lines) + "\n")
    env = {"PATH": f"{prefix / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"}
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and any(Path(libdir).glob(f"libpython{_PY}*.so*")):
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [libdir, os.environ.get("LD_LIBRARY_PATH")]))
    return env


class TritonServer:
    """A private `tritonserver` on free 127.0.0.1 ports, serving `model_repository`.

    `start()` returns once the server and every model in the repository are ready (or raises
    with the log's tail); `stop()` shuts it down, stubs included, and is safe to call twice.
    The server runs in its own process group and logs to `log_path`."""

    def __init__(self, model_repository: str | Path, *, work_dir: str | Path | None = None,
                 home: Path | None = None, log_path: Path | None = None, exit_timeout_s: int = 2,
                 start_timeout_s: float = 300.0, extra_args: Sequence[str] = (),
                 env: Mapping[str, str] | None = None) -> None:
        self.model_repository = Path(model_repository)
        self.work_dir = Path(work_dir) if work_dir else self.model_repository.parent
        self.home = home
        self.log_path = log_path or self.work_dir / "tritonserver.log"
        self.exit_timeout_s = exit_timeout_s
        self.start_timeout_s = start_timeout_s
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.grpc_port = self.http_port = 0

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def start(self) -> TritonServer:
        if self.process is not None and self.process.poll() is None:
            return self
        home = self.home or ensure_triton_binaries()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # OpenMP threads that spin while the stub waits for Triton's next request starve the server
        # and the clients of CPU: measured 10x fewer requests/s on 2 cores. Sleep instead.
        env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, **stub_python(self.work_dir, home), **self.env}
        for attempt in range(3):  # a free port can be taken between picking and binding it
            self.grpc_port, self.http_port = free_ports(2)
            log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
            argv = [str(home / "bin" / "tritonserver"), f"--model-repository={self.model_repository}",
                    f"--backend-directory={home / 'backends'}", "--grpc-address=127.0.0.1",
                    f"--grpc-port={self.grpc_port}", "--http-address=127.0.0.1", f"--http-port={self.http_port}",
                    "--allow-metrics=false", f"--exit-timeout-secs={self.exit_timeout_s}", *self.extra_args]
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                env=env, cwd=self.work_dir, start_new_session=True)
            _LIVE.append(self)
            try:
                self._wait_ready()
                return self
            except TritonUnavailable:
                self.stop()
                with self.log_path.open("rb") as log_file:
                    log_file.seek(log_start)
                    if attempt == 2 or b"already in use" not in log_file.read():
                        raise
        return self

    def _wait_ready(self) -> None:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout_s
        client = grpcclient.InferenceServerClient(self.grpc_url)
        try:
            while True:
                if self.process.poll() is not None:
                    raise TritonUnavailable(f"tritonserver exited with code {self.process.returncode} before it was "
                                            f"ready; log {self.log_path}:\n{log_tail(self.log_path, 40)}")
                with contextlib.suppress(InferenceServerException):
                    if client.is_server_ready(client_timeout=2):
                        return
                if time.monotonic() > deadline:
                    raise TritonUnavailable(f"tritonserver was not ready within {self.start_timeout_s:.0f}s; "
                                            f"log {self.log_path}:\n{log_tail(self.log_path, 40)}")
                time.sleep(0.1)
        finally:
            client.close()

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM (Triton unloads its models and stops the stubs), then SIGKILL whatever is left
        in the server's process group."""
        _LIVE[:] = [s for s in _LIVE if s is not self]
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout if timeout is not None else self.exit_timeout_s + 20)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # stubs that outlived the server; our own session only
        proc.wait()
        deadline = time.monotonic() + 5  # orphaned stubs are reaped by init, not by us: wait for it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            while time.monotonic() < deadline:
                os.killpg(proc.pid, 0)
                time.sleep(0.05)

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


_LIVE: list[TritonServer] = []


@atexit.register
def _stop_leftovers() -> None:
    for server in reversed(list(_LIVE)):
        server.stop(timeout=5)


if __name__ == "__main__":  # `python -m dreamforge.triton_server` prefetches (used by `make triton`)
    started = time.monotonic()
    print(f"triton home: {ensure_triton_binaries()} ({time.monotonic() - started:.1f}s)")
