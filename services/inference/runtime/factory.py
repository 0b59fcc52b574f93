"""Builds the configured runtime for one base checkpoint.

`DREAMFORGE_INFERENCE_RUNTIME=torch` (the default) runs the model in this process;
`triton` delegates to `services/inference/runtime/triton_runtime.py`, which must expose
`create(settings, base_dir) -> ModelRuntime` (imported lazily: the torch-only image and
the tests do not need tritonclient)."""

from __future__ import annotations

from pathlib import Path

from services.inference.runtime.base import ModelRuntime
from services.inference.settings import InferenceSettings


def create_runtime(settings: InferenceSettings, base_dir: Path) -> ModelRuntime:
    if settings.inference_runtime == "torch":
        from services.inference.runtime.torch_runtime import TorchRuntime

        return TorchRuntime(base_dir, memory_budget_bytes=settings.adapter_memory_budget_bytes,
                            max_batch_size=settings.max_batch_size, batch_window_s=settings.batch_window_ms / 1000,
                            threads=settings.torch_threads)
    try:
        from services.inference.runtime import triton_runtime  # type: ignore[attr-defined, unused-ignore]
    except ImportError as exc:
        raise RuntimeError(f"runtime {settings.inference_runtime!r} is not available in this build: {exc}") from exc
    runtime: ModelRuntime = triton_runtime.create(settings, base_dir)
    return runtime


def missing_default_model(settings: InferenceSettings) -> str | None:
    """Why the built-in default model cannot be served (None when it can)."""
    if settings.inference_runtime != "torch" or (settings.default_model / "config.json").is_file():
        return None
    return (f"no model runtime is configured: the default checkpoint {settings.default_model} does not exist "
            "(build it with `python -m dreamforge.model build --out models/default` or set DREAMFORGE_DEFAULT_MODEL)")
