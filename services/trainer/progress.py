"""Per-step progress out of TRL (a `TrainerCallback`), and reward-saturation warnings.

TRL logs every step (`logging_steps=1`): loss, learning rate, and for GRPO the reward mean/std
and KL; for DPO the reward margin stands in for the reward. Samples/s and the ETA come from the
measured step times. A GRPO reward that no longer varies within groups (`reward_std` 0 for three
steps) gives no learning signal and often means the reward is saturated or hacked: it is reported
once as a warning (event and job result).
"""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback

SATURATION_STEPS = 3


class ProgressCallback(TrainerCallback):
    def __init__(self, events: Any, total_steps: int, samples_per_step: int) -> None:
        self.events = events
        self.total_steps = total_steps
        self.samples_per_step = samples_per_step
        self.warnings: list[str] = []
        self.last_step = 0
        self.train_seconds = 0.0
        self._step_started = 0.0
        self._step_times: list[float] = []
        self._flat = 0

    @property
    def samples_per_second(self) -> float:
        if not self._step_times:
            return 0.0
        return round(self.samples_per_step * len(self._step_times) / sum(self._step_times), 3)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._step_started = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        took = time.perf_counter() - self._step_started
        self._step_times.append(took)
        self.train_seconds += took

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        if "train_runtime" in logs or "loss" not in logs:
            return
        step = int(state.global_step)
        self.last_step = step
        recent = self._step_times[-5:] or [0.0]
        per_step = sum(recent) / len(recent)
        reward = logs.get("reward", logs.get("rewards/margins", 0.0))
        std = float(logs.get("reward_std", 0.0))
        self.events.emit("progress", step=step, total_steps=self.total_steps, loss=float(logs.get("loss", 0.0)),
                         reward_mean=float(reward), reward_std=std, kl=float(logs.get("kl", 0.0)),
                         learning_rate=float(logs.get("learning_rate", 0.0)),
                         samples_per_second=round(self.samples_per_step / per_step, 3) if per_step else 0.0,
                         eta_seconds=round(per_step * max(self.total_steps - step, 0), 2))
        if "reward_std" in logs:
            self._flat = self._flat + 1 if std == 0.0 else 0
            if self._flat == SATURATION_STEPS and not self.warnings:
                message = (f"reward saturated at step {step}: every sampled answer got the same reward "
                           f"({float(reward):.3f}) for {SATURATION_STEPS} steps, so GRPO has no signal left")
                self.warnings.append(message)
                self.events.emit("warning", message=message)
