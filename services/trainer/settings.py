"""Trainer settings: where jobs work, how much memory and time a job's worker process may
use, the held-out evaluation size and the default release gate (env `DREAMFORGE_<FIELD>`)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

import dreamforge
from dreamforge.settings import PlatformSettings

#: The platform's default base checkpoint (same place the inference service loads it from).
DEFAULT_MODEL_DIR = Path(dreamforge.__file__).resolve().parents[1] / "models" / "default"


class TrainerSettings(PlatformSettings):
    default_model: Path = Field(default=DEFAULT_MODEL_DIR,
                                description="Base checkpoint of registry models whose base_checkpoint is empty")
    job_memory_mb: int = Field(default=8192, ge=256, description="Address-space cap of a job's worker process")
    job_timeout_s: float = Field(default=1800.0, gt=0, description="Wall-clock limit of one training job")
    job_threads: int = Field(default=0, ge=0, description=(
        "torch threads of a worker; 0 = half the CPU cores (at least 1), leaving the rest to serving"))

    @property
    def worker_threads(self) -> int:
        """Threads a training or tuning worker uses (measured: on 2 cores, 1 thread trains ~3-9x faster
        than 2 when inference is busy too, since oversubscribed threads wait on each other)."""
        return self.job_threads or max(1, (os.cpu_count() or 2) // 2)
    #: 200 test images hold ~1,300 questions, 200 captions and ~700 objects, so one answer moves a metric by
    #: well under the gate's 2 points (on 24 images one caption was 4 points); ~20 s per evaluation, 1 thread.
    eval_images: int = Field(default=200, ge=1, le=500,
                             description="Held-out images of the synthetic test split evaluated before and after")
    max_concurrent_jobs: int = Field(default=1, ge=1, description="Jobs running at once (one per model always)")
    policy_poll_s: float = Field(default=2.0, gt=0, description="How often the online trigger checks policies")
    registry_timeout_s: float = Field(default=60.0, gt=0, description="Deadline of calls to the registry")
    feedback_timeout_s: float = Field(default=10.0, gt=0, description="Deadline of calls to the feedback service")
    tuning_idle_s: float = Field(default=900.0, gt=0,
                                 description="A tuning session's worker exits after this long without calls")

    @property
    def jobs_dir(self) -> Path:
        return self.home / "trainer" / "jobs"

    @property
    def tuning_dir(self) -> Path:
        return self.home / "trainer" / "tuning"

    def base_dir(self, base_checkpoint: str) -> Path:
        """The directory of a registry model's base checkpoint (empty or 'default' = the default model)."""
        name = base_checkpoint.strip()
        if name in ("", "default"):
            return self.default_model
        path = (self.default_model.resolve().parent / name).resolve()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"base checkpoint {base_checkpoint!r} is not a model directory on this trainer")
        return path
