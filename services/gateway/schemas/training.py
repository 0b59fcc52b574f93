"""JSON shapes of the training routes (`/v1/training/...`) and the Moondream-compatible tuning
routes (`/v1/tuning/...`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

INT32_MAX = 2**31 - 1
Method = Literal["grpo", "dpo", "sft"]
ModelRef = Annotated[str, msgspec.Meta(min_length=1, max_length=200, description="Registry model name or id")]
Count = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
RewardFunctionRef = Annotated[str | dict[str, Any] | None, msgspec.Meta(
    description="A saved reward function's id, or its definition inline ({\"terms\": [...]}); required for grpo")]


class CreateJob(msgspec.Struct, forbid_unknown_fields=True):
    model: ModelRef
    method: Method
    base_version: Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX, description="0 = the production version")] = 0
    reward_function: RewardFunctionRef = None
    reward_function_version: Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX, description="0 = latest")] = 0
    config: Annotated[dict[str, Any], msgspec.Meta(description=(
        "steps, learning_rate, beta, num_generations, prompts_per_step, max_completion_length, temperature, top_k, "
        "lora_rank, lora_alpha, seed, skills, source (synthetic|rewards), raters (accurate|concise), train_images, "
        "heldout_images, replay_images (sft), "
        "gate {alias, promote, min_gain, max_skill_drop}"))] = {}


class ProgressOut(msgspec.Struct):
    step: int
    total_steps: int
    loss: float
    reward_mean: float
    reward_std: float
    kl: float
    learning_rate: float
    samples_per_second: float
    eta_seconds: float


class JobOut(msgspec.Struct):
    id: str
    model: str
    base_version: int
    method: str
    status: Annotated[str, msgspec.Meta(description="queued | running | succeeded | failed | cancelled")]
    reason: str
    trigger: Annotated[str, msgspec.Meta(description="manual | policy")]
    reward_function_id: str
    reward_function_version: int
    reward_function: dict[str, Any]
    config: dict[str, Any]
    result_version: Annotated[int, msgspec.Meta(description="The registered version; 0 until then")]
    promoted: bool
    eval_before: dict[str, float]
    eval_after: dict[str, float]
    gate: dict[str, Any]
    queue_position: Annotated[int, msgspec.Meta(description="1 = next to run; 0 when not queued")]
    created_at: datetime | None
    updated_at: datetime | None
    history: list[ProgressOut]


class JobList(msgspec.Struct):
    jobs: list[JobOut]
    next_page_token: str


class Policy(msgspec.Struct, forbid_unknown_fields=True):
    model: ModelRef
    enabled: bool = True
    every_n_rewards: Count = 0
    every_minutes: Count = 0
    min_rewards: Count = 0
    method: Method = "grpo"
    reward_function: RewardFunctionRef = None
    reward_function_version: Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX)] = 0
    config: dict[str, Any] = {}


class PolicyOut(msgspec.Struct):
    model: str
    enabled: bool
    every_n_rewards: int
    every_minutes: int
    min_rewards: int
    method: str
    reward_function_id: str
    reward_function_version: int
    reward_function: dict[str, Any]
    config: dict[str, Any]
    pending_rewards: Annotated[int, msgspec.Meta(description="Buffered rewards no job has trained on yet")]
    last_triggered_at: datetime | None


# -- Moondream-compatible tuning (`/v1/tuning/...`) ------------------------------------------------
FinetuneId = Annotated[str, msgspec.Meta(min_length=1, max_length=100, description="The finetune's id (ft-...)")]


class CreateFinetune(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    rank: Annotated[int, msgspec.Meta(ge=1, le=64, description="LoRA rank")]


class FinetuneOut(msgspec.Struct):
    finetune_id: str
    name: str
    rank: int
    step: int
    created_at_ms: int
    updated_at_ms: int


class FinetuneEnvelope(msgspec.Struct):
    finetune: FinetuneOut


class FinetuneList(msgspec.Struct):
    finetunes: list[FinetuneOut]


class RolloutsBody(msgspec.Struct):
    finetune_id: FinetuneId
    request: Annotated[dict[str, Any], msgspec.Meta(description=(
        "Moondream skill request: skill (query|detect|point), image_url, question | object, settings"))]
    num_rollouts: Annotated[int, msgspec.Meta(ge=1, le=16)] = 1
    ground_truth: Annotated[dict[str, Any] | None, msgspec.Meta(
        description="detect: {boxes}; point: {points | boxes} (normalised); rewards are computed from it")] = None


class RolloutsOut(msgspec.Struct):
    request: dict[str, Any]
    rollouts: list[dict[str, Any]]
    rewards: list[float] | None


class TrainStepBody(msgspec.Struct):
    finetune_id: FinetuneId
    groups: Annotated[list[dict[str, Any]], msgspec.Meta(description=(
        "RL groups {mode: rl, request, rollouts, rewards} and SFT groups {mode: sft, request, target}"))]
    lr: Annotated[float, msgspec.Meta(gt=0, le=0.01)] = 2e-4


class TrainStepOut(msgspec.Struct):
    step: int
    applied: bool
    kl: float | None
    router_kl: float | None
    grad_norm: float | None
    sft_loss: float | None
    reward_mean: float | None
    reward_std: float | None


class MetricsBody(msgspec.Struct, forbid_unknown_fields=True):
    step: Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX)]
    metrics: dict[str, float]


class MetricsOut(msgspec.Struct):
    ok: bool
    step: int
    logged_count: int


class CheckpointOut(msgspec.Struct):
    checkpoint_id: str
    finetune_id: str
    step: int
    version: Annotated[int, msgspec.Meta(description="Registry version of the finetune's model")]
    model: Annotated[str, msgspec.Meta(description="Reference the skills endpoints accept (`<finetune_id>@<step>`)")]
    expires_at_ms: int | None
    created_at_ms: int
    updated_at_ms: int


class CheckpointList(msgspec.Struct):
    checkpoints: list[CheckpointOut]
    next_cursor: str | None
    has_more: bool


class SaveCheckpointOut(msgspec.Struct):
    ok: bool
    checkpoint: CheckpointOut
