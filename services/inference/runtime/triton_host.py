"""The Triton server(s) this process uses, and the models it loaded on them.

Why: every `TritonRuntime` (one per base checkpoint, see pool.py) needs a Triton model of its
own -- its own base weights and adapter cache -- but starting a server per runtime would cost a
server start each, and loading a model costs a backend stub process that imports torch and
transformers (5-15 s on a small CPU machine). So, per server URL, one `TritonHost` per process:

* **Server.** Without `DREAMFORGE_TRITON_URL` the host starts a private `tritonserver` (see
  `dreamforge.triton_server`) on free 127.0.0.1 ports with an empty repository in explicit
  model-control mode, and stops it once no model of ours is loaded on it. With a URL, it uses
  that server, which must run with `--model-control-mode=explicit` (as docker-compose does).
* **Models.** A runtime's model is loaded through the model-control API with its config and
  `model.py` sent in the request (`load_model(config=..., files=...)`), under a unique name, so
  the server's own repository does not matter and two inference replicas never collide. Only the
  checkpoint and adapter *directories* must be visible to the server at the same paths.
* **Keeping warm.** A closed runtime's model is parked for `keep_warm_s` (default 60) instead
  of unloaded; a runtime started on the same base with the same settings in that time takes it
  over (after its adapters are dropped). The pool reopening a base, or a test suite building
  runtimes one after another, then costs milliseconds instead of a model load.

Control calls use the blocking tritonclient (callers run them in a thread): hosts outlive event
loops and parking runs on timer threads.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import json_format, text_format
from tritonclient.grpc import InferenceServerClient, model_config_pb2

from dreamforge.triton_server import TritonServer

log = logging.getLogger("dreamforge.inference.triton")

ROOT = Path(__file__).resolve().parents[3]
#: Where the model's config.pbtxt + 1/model.py are looked for: $DREAMFORGE_TRITON_TEMPLATE, the
#: repository checkout, then /models (docker-compose mounts deploy/triton/models there; the service
#: image itself holds only the Python packages).
TEMPLATE_DIRS = [Path(p) for p in [os.environ.get("DREAMFORGE_TRITON_TEMPLATE", "")] if p] + [
    ROOT / "deploy" / "triton" / "models" / "dreamforge_vlm", Path("/models/dreamforge_vlm")]


def template_dir() -> Path:
    for candidate in TEMPLATE_DIRS:
        if (candidate / "config.pbtxt").is_file() and (candidate / "1" / "model.py").is_file():
            return candidate
    raise RuntimeError(f"the Triton model template (config.pbtxt + 1/model.py) is in none of "
                       f"{', '.join(map(str, TEMPLATE_DIRS))}: set DREAMFORGE_TRITON_TEMPLATE")


@dataclass(frozen=True)
class ModelSettings:
    """What makes one Triton model of the VLM (a runtime may take over the warm model a closed runtime
    with equal settings left)."""

    base_dir: Path
    memory_budget_bytes: int
    max_batch_size: int = 8
    queue_delay_us: int = 5000
    device: str = "auto"          # auto | cpu | cuda
    torch_threads: int = 0
    gpu: bool = False             # KIND_GPU instance (cuda:<device id>) instead of KIND_CPU


def render_config(settings: ModelSettings, name: str, template: Path | None = None) -> model_config_pb2.ModelConfig:
    """The template's config.pbtxt with the name, parameters, batching and instance kind filled in.
    `max_batch_size` 1 means no dynamic batching (the benchmark's baseline)."""
    path = (template or template_dir()) / "config.pbtxt"
    config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    config.name = name
    params = config.parameters
    params["base_dir"].string_value = str(settings.base_dir)
    params["adapter_memory_budget_bytes"].string_value = str(settings.memory_budget_bytes)
    params["device"].string_value = settings.device
    params["torch_threads"].string_value = str(settings.torch_threads)
    config.max_batch_size = max(1, settings.max_batch_size)
    if config.max_batch_size == 1:
        config.ClearField("dynamic_batching")
    else:
        batching = config.dynamic_batching
        batching.max_queue_delay_microseconds = settings.queue_delay_us
        preferred = [n for n in batching.preferred_batch_size if n < config.max_batch_size]
        batching.ClearField("preferred_batch_size")
        batching.preferred_batch_size.extend([*preferred, config.max_batch_size])
    del config.instance_group[:]
    group = model_config_pb2.ModelInstanceGroup
    config.instance_group.add(kind=group.KIND_GPU if settings.gpu else group.KIND_CPU, count=1)
    return config


def model_files(template: Path | None = None) -> dict[str, bytes]:
    """The files `load_model` sends with the config (Triton writes them into a temporary repository)."""
    return {"file:1/model.py": ((template or template_dir()) / "1" / "model.py").read_bytes()}


class TritonHost:
    """One Triton server and the models this process loaded on it (thread-safe, blocking)."""

    def __init__(self, url: str | None, work_dir: Path | None = None) -> None:
        self.external_url = url
        self.work_dir = work_dir
        self.server: TritonServer | None = None
        self._client: InferenceServerClient | None = None
        self._lock = threading.RLock()
        self._loaded: dict[str, str] = {}                 # model name -> settings key
        self._parked: dict[str, tuple[str, threading.Timer]] = {}  # settings key -> (name, expiry timer)

    @property
    def url(self) -> str:
        if self.external_url:
            return self.external_url
        if self.server is None:
            raise RuntimeError("the private Triton server is not running")
        return self.server.grpc_url

    def acquire(self, settings: ModelSettings) -> tuple[str, bool]:
        """A loaded model for `settings`: (name, True) when a parked one was taken over."""
        key = _key(settings)
        with self._lock:
            parked = self._parked.pop(key, None)
            if parked is not None:
                parked[1].cancel()
                return parked[0], True
            client = self._ensure_server()
            name = f"dreamforge_vlm_{uuid.uuid4().hex[:12]}"
            config = json_format.MessageToJson(render_config(settings, name))
            log.info("loading triton model", extra={"model": name, "base": str(settings.base_dir)})
            try:
                client.load_model(name, config=config, files=model_files())
            except Exception:
                self._stop_if_idle()
                raise
            self._loaded[name] = key
            return name, False

    def release(self, name: str, keep_warm_s: float) -> None:
        """The runtime using `name` closed: park the model for `keep_warm_s`, or unload it now."""
        with self._lock:
            key = self._loaded.get(name)
            if key is None:
                return
            if keep_warm_s > 0 and key not in self._parked:
                timer = threading.Timer(keep_warm_s, self._expire, args=(key, name))
                timer.daemon = True
                self._parked[key] = (name, timer)
                timer.start()
                return
            self._unload(name)

    def statistics(self, name: str) -> tuple[int, int]:
        """(inference_count, execution_count) of a model: requests served and execute() calls."""
        with self._lock:
            stats = self._ensure_client().get_inference_statistics(name, as_json=True)
        entry = (stats.get("model_stats") or [{}])[0]
        return int(entry.get("inference_count", 0)), int(entry.get("execution_count", 0))

    def shutdown(self) -> None:
        """Unload every model of ours and stop the private server (if we started one)."""
        with self._lock:
            for _, timer in self._parked.values():
                timer.cancel()
            self._parked.clear()
            if self.server is not None:
                self._loaded.clear()  # stopping the server unloads them
            for name in list(self._loaded):
                self._unload(name, stop=False)
            self._stop_if_idle()

    # -- internals (under the lock) ------------------------------------------------------------
    def _expire(self, key: str, name: str) -> None:
        with self._lock:
            if self._parked.get(key, ("", None))[0] == name:
                del self._parked[key]
                self._unload(name)

    def _unload(self, name: str, stop: bool = True) -> None:
        """Unload `name`; when it was the private server's last model, stop the server instead
        (which unloads it: Triton unloads asynchronously, so unload-then-stop would only make the
        server wait out its exit timeout for the stub)."""
        self._loaded.pop(name, None)
        if stop and not self._loaded and self.server is not None:
            self._stop_if_idle()
            return
        with contextlib.suppress(Exception):  # a server that is gone has unloaded it anyway
            self._ensure_client().unload_model(name)

    def _ensure_client(self) -> InferenceServerClient:
        if self._client is None:
            self._client = InferenceServerClient(self.url)
        return self._client

    def _ensure_server(self) -> InferenceServerClient:
        if self.external_url is None and (self.server is None or self.server.process is None):
            # per process: inference replicas sharing DREAMFORGE_HOME each start their own server
            work = (self.work_dir or Path(tempfile.mkdtemp(prefix="dreamforge-triton-"))) / f"server-{os.getpid()}"
            (work / "models").mkdir(parents=True, exist_ok=True)
            self.server = TritonServer(work / "models", work_dir=work, extra_args=[
                "--model-control-mode=explicit", "--disable-auto-complete-config"])
            self.server.start()
            self._client = None
        return self._ensure_client()

    def _stop_if_idle(self) -> None:
        if self._loaded or self.server is None:
            return
        if self._client is not None:  # an open connection would hold the server's exit timeout
            self._client.close()
            self._client = None
        self.server.stop()
        self.server = None


_HOSTS: dict[str | None, TritonHost] = {}
_HOSTS_LOCK = threading.Lock()


def host_for(url: str | None, work_dir: Path | None = None) -> TritonHost:
    """The process's host of `url` (None = a private server, started in `work_dir` when needed)."""
    with _HOSTS_LOCK:
        host = _HOSTS.get(url)
        if host is None:
            host = _HOSTS[url] = TritonHost(url, work_dir)
        elif host.server is None and work_dir is not None:
            host.work_dir = work_dir
        return host


@atexit.register
def shutdown_hosts() -> None:
    """Unload our models everywhere and stop the private server (also run at interpreter exit)."""
    with _HOSTS_LOCK:
        hosts = list(_HOSTS.values())
    for host in hosts:
        host.shutdown()


def _key(settings: ModelSettings) -> str:
    rendered = render_config(settings, "x")
    return hashlib.sha256(rendered.SerializeToString(deterministic=True) + repr(sorted(model_files().items())).encode()
                          ).hexdigest()


def gpu_visible() -> bool:
    """An NVIDIA GPU on this machine (cheap: no torch import in the service process)."""
    return Path("/proc/driver/nvidia/gpus").is_dir() and any(Path("/proc/driver/nvidia/gpus").iterdir())
