"""LoRA adapters as registry artifacts: pack, unpack, and make one for tests and benchmarks.

An adapter travels as a plain tar of a PEFT adapter directory holding exactly
`adapter_config.json` and `adapter_model.safetensors`. Why this shape:

- the registry stores artifacts by sha256, so `pack_adapter` is deterministic (sorted members,
  zeroed mtime/owner, fixed modes): the same weights always give the same bytes and one blob;
- the inference service unpacks bytes it fetched over the network, so `unpack_adapter` trusts
  nothing: only those two regular files, no paths, links or devices, sizes bounded, the config
  must be a JSON object; it extracts into a temporary sibling and renames it into place, so a
  reader never sees half an adapter and two concurrent unpacks of the same sha cannot collide;
- the trainer will produce adapters the same way PEFT saves them (`save_pretrained`), so the
  README.md PEFT writes next to them is tolerated by `pack_adapter` and left out of the tar.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
ADAPTER_FILES = (CONFIG_FILE, WEIGHTS_FILE)
#: Files PEFT's save_pretrained writes besides the adapter; packed without them.
IGNORED_FILES = ("README.md",)
MAX_CONFIG_BYTES = 1024 * 1024
MAX_WEIGHTS_BYTES = 512 * 1024 * 1024


class AdapterError(ValueError):
    """An adapter directory or archive that is not acceptable; the message says why."""


def pack_adapter(directory: str | Path) -> bytes:
    """A deterministic tar of the PEFT adapter in `directory` (the artifact to register)."""
    root = Path(directory)
    if not root.is_dir():
        raise AdapterError(f"{root} is not a directory")
    present = {p.name for p in root.iterdir()}
    missing = [name for name in ADAPTER_FILES if name not in present]
    if missing:
        raise AdapterError(f"{root} is not a PEFT adapter: {', '.join(missing)} missing")
    extra = sorted(present - set(ADAPTER_FILES) - set(IGNORED_FILES))
    if extra:
        raise AdapterError(f"{root} holds files an adapter may not carry: {', '.join(extra)} "
                           f"(only {' and '.join(ADAPTER_FILES)})")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(ADAPTER_FILES):
            path = root / name
            if path.is_symlink() or not path.is_file():
                raise AdapterError(f"{path} must be a regular file")
            data = path.read_bytes()
            _check_member(name, len(data))
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def unpack_adapter(data: bytes, dest: str | Path) -> Path:
    """Safely extract a packed adapter to `dest` (atomically; an existing `dest` is kept as is,
    since artifacts are content-addressed). Returns `dest`."""
    dest = Path(dest)
    if (dest / CONFIG_FILE).is_file() and (dest / WEIGHTS_FILE).is_file():
        return dest
    files = read_adapter_archive(data)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for name, content in files.items():
            (tmp / name).write_bytes(content)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / CONFIG_FILE).is_file():  # not a concurrent twin: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def read_adapter_archive(data: bytes) -> dict[str, bytes]:
    """The two adapter files of a packed adapter, after every check."""
    if not data:
        raise AdapterError("adapter archive is empty")
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                name = member.name
                if name not in ADAPTER_FILES:
                    raise AdapterError(f"adapter archive holds {name!r}: only {' and '.join(ADAPTER_FILES)} "
                                       "are allowed (no directories or paths)")
                if not member.isreg():
                    raise AdapterError(f"adapter archive member {name!r} is not a regular file")
                if name in files:
                    raise AdapterError(f"adapter archive holds {name!r} twice")
                _check_member(name, member.size)
                handle = tar.extractfile(member)
                if handle is None:
                    raise AdapterError(f"adapter archive member {name!r} cannot be read")
                files[name] = handle.read()
    except tarfile.TarError as exc:
        raise AdapterError(f"adapter archive is not a valid tar: {exc}") from None
    missing = [name for name in ADAPTER_FILES if name not in files]
    if missing:
        raise AdapterError(f"adapter archive lacks {', '.join(missing)}")
    try:
        config = json.loads(files[CONFIG_FILE])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise AdapterError(f"{CONFIG_FILE} is not valid JSON") from None
    if not isinstance(config, dict):
        raise AdapterError(f"{CONFIG_FILE} must be a JSON object")
    return files


def _check_member(name: str, size: int) -> None:
    limit = MAX_CONFIG_BYTES if name == CONFIG_FILE else MAX_WEIGHTS_BYTES
    if size > limit:
        raise AdapterError(f"{name} is {size} bytes; the limit is {limit} bytes")


def make_lora_adapter(
    base_dir: str | Path,
    out_dir: str | Path,
    seed: int,
    r: int = 8,
    alpha: int = 16,
    target_modules: str = r".*text_model.*\.(q_proj|v_proj)",
    strength: float = 1.0,
) -> Path:
    """Write a real, randomly initialised LoRA adapter for the model in `base_dir` to `out_dir`.

    For tests and benchmarks: PEFT's non-zero init (`init_lora_weights=False`, A and B both
    random, seeded) times `strength` changes the model's answers, so a test can tell which
    adapter answered. Returns `out_dir`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    model: Any = AutoModelForImageTextToText.from_pretrained(str(base_dir), dtype=torch.float32)
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=target_modules, init_lora_weights=False)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, config)
    if strength != 1.0:
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.mul_(strength)
    out = Path(out_dir)
    peft_model.save_pretrained(str(out))
    for name in IGNORED_FILES:
        (out / name).unlink(missing_ok=True)
    return out
