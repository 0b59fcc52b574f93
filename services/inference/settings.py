"""Inference-only settings (which model, which runtime, how much memory adapters may use),
on top of the platform's `DREAMFORGE_*` settings so one environment configures the process."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

import dreamforge
from dreamforge.images import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS
from dreamforge.settings import PlatformSettings

#: Where `python -m dreamforge.model build --out models/default` puts the platform's default model.
DEFAULT_MODEL_DIR = Path(dreamforge.__file__).resolve().parents[1] / "models" / "default"


class InferenceSettings(PlatformSettings):
    default_model: Path = Field(
        default=DEFAULT_MODEL_DIR,
        description="Base checkpoint directory of the built-in default model (and of registry models "
                    "whose base_checkpoint is empty)")
    base_checkpoint_roots: list[Path] = Field(
        default_factory=list,
        description="Directories whose model checkpoints registry models may name as base_checkpoint (JSON "
                    "list), besides the default model's parent directory")
    inference_runtime: Literal["torch", "triton"] = Field(default="torch", description="torch | triton")
    triton_url: str = Field(default="127.0.0.1:8001", description="Triton gRPC endpoint (runtime triton)")
    adapter_memory_budget_mb: float = Field(
        default=512.0, gt=0, description="Memory the LoRA adapters of one base model may use; LRU eviction beyond")
    max_image_bytes: int = Field(default=MAX_IMAGE_BYTES, gt=0, description="Largest encoded image accepted")
    max_image_pixels: int = Field(default=MAX_IMAGE_PIXELS, gt=0, description="Largest decoded image accepted")
    max_batch_size: int = Field(default=8, ge=1, le=256, description="Most calls one batched generate runs")
    batch_window_ms: float = Field(
        default=5.0, ge=0, le=1000, description="How long an idle runtime waits to batch concurrent calls")
    resolve_cache_s: float = Field(
        default=5.0, ge=0, description="How long a resolved reference is reused (model.updated clears it sooner)")
    max_loaded_bases: int = Field(default=2, ge=1, description="Base checkpoints kept in memory at once (LRU)")
    max_adapter_bytes: int = Field(default=512 * 1024 * 1024, gt=0, description="Largest adapter artifact fetched")
    torch_threads: int = Field(
        default=0, ge=0, description="torch intra-op threads; 0 = chosen per batch: torch's default for big "
                                     "batches and big models, one fewer for a small model's small "
                                     "batches (serving_threads)")
    warm_up: bool = Field(
        default=True, description="Load the default model and run one short generation before reporting ready, "
                                  "so the first request does not pay for loading (seconds with Triton)")
    registry_timeout_s: float = Field(default=10.0, gt=0, description="Deadline of calls to the registry")
    events_quiet_ms: float = Field(
        default=20.0, ge=0, le=5000,
        description="The outbox relay publishes an answer's events once no request has been in flight this long, "
                    "so that work (the relay, NATS, billing, feedback) runs where no request is")
    events_linger_ms: float = Field(
        default=1000.0, ge=0, le=5000,
        description="Under steady load (never quiet), the longest the relay waits after an answer: the answers of "
                    "that window go out in one pass instead of one pass landing on every next request")

    @property
    def adapter_memory_budget_bytes(self) -> int:
        return int(self.adapter_memory_budget_mb * 1024 * 1024)

    @property
    def checkpoint_roots(self) -> list[Path]:
        """Where base checkpoints may live: the default model's directory's parent, plus the configured ones."""
        return [self.default_model.resolve().parent, *(root.resolve() for root in self.base_checkpoint_roots)]

    @property
    def adapters_dir(self) -> Path:
        """Unpacked adapters, one directory per artifact sha256."""
        return self.home / "adapters"
