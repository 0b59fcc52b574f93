"""A training job's configuration: defaults per method, and validation whose errors name the field.

Reward-hacking guards live here as limits, not advice: GRPO needs a KL penalty (`beta` > 0),
learning rates are capped, and completions are capped at the skill's serving token limit, so
a policy cannot win by drifting far from the base or padding to the limit (the reward
function's `output_length` term and the held-out answer length show the rest).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from dreamforge.grpcio import InvalidArgument
from dreamforge.model.skills import MAX_NEW_TOKENS
from services.trainer.data import RATERS  # the simulated raters of synthetic dpo/sft data, and the skill each judges

METHODS = ("grpo", "dpo", "sft")
SOURCES = ("synthetic", "rewards")
SKILLS = tuple(MAX_NEW_TOKENS)
MAX_LR = 5e-3


@dataclass
class Gate:
    """Promote only when the primary held-out metric rises by more than `min_gain` and no skill
    metric drops by more than `max_skill_drop` (absolute, e.g. 0.02 = 2 points)."""

    alias: str = "production"
    promote: bool = True
    min_gain: float = 0.0
    max_skill_drop: float = 0.02


@dataclass
class JobConfig:
    steps: int = 20
    learning_rate: float = 0.0          # 0 = the method's default
    beta: float = 0.0                   # 0 = the method's default (KL weight / DPO temperature)
    num_generations: int = 8
    prompts_per_step: int = 4
    max_completion_length: int = 0      # 0 = the skill's serving limit
    temperature: float = 1.0
    top_k: int = 0                      # grpo sampling: only the k likeliest tokens (0 = all)
    lora_rank: int = 8
    lora_alpha: int = 16
    seed: int = 0
    skills: list[str] = field(default_factory=lambda: ["query"])
    source: str = "synthetic"
    raters: str = "accurate"
    replay_images: int = 0              # sft: also keep the policy's answers to the other skills (data.replay_rows)
    train_images: int = 32
    heldout_images: int = 24
    gate: Gate = field(default_factory=Gate)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def resolved(self, method: str) -> JobConfig:
        """A copy with the method's defaults filled in."""
        out = JobConfig(**{**asdict(self), "gate": Gate(**asdict(self.gate))})
        if not out.learning_rate:
            # LoRA on a small model: at lower rates a few dozen steps leave greedy answers unchanged
            out.learning_rate = {"grpo": 1e-3, "dpo": 5e-4, "sft": 5e-4}[method]
        if not out.beta:
            out.beta = {"grpo": 0.04, "dpo": 0.1, "sft": 0.0}[method]
        if not out.max_completion_length:
            out.max_completion_length = max(MAX_NEW_TOKENS[s] for s in out.skills)
        return out


_LIMITS: dict[str, tuple[type, float, float]] = {
    "steps": (int, 1, 2000), "learning_rate": (float, 0.0, MAX_LR), "beta": (float, 0.0, 10.0),
    "num_generations": (int, 2, 32), "prompts_per_step": (int, 1, 64), "max_completion_length": (int, 0, 256),
    "temperature": (float, 0.05, 2.0), "top_k": (int, 0, 1000), "lora_rank": (int, 1, 128), "lora_alpha": (int, 1, 512),
    "seed": (int, 0, 2**31 - 1), "train_images": (int, 1, 5000), "heldout_images": (int, 1, 500),
    "replay_images": (int, 0, 2000),
}


def parse_config(method: str, raw: str | dict[str, Any] | None) -> JobConfig:
    """Validate `raw` (JSON text or dict) into a JobConfig; InvalidArgument names the bad field."""
    if method not in METHODS:
        raise InvalidArgument(f"method {method!r} is invalid: use one of {', '.join(METHODS)}")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"config is not valid JSON: {exc.msg} at position {exc.pos}") from None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise InvalidArgument("config must be a JSON object")
    known = set(JobConfig.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InvalidArgument(f"config.{unknown[0]} is not a known setting: use {', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name in _LIMITS:
            values[name] = _number(name, value, *_LIMITS[name])
    cfg = JobConfig(**values)
    if "skills" in raw:
        skills = raw["skills"]
        if not isinstance(skills, list) or not skills or any(s not in SKILLS for s in skills):
            raise InvalidArgument(f"config.skills must be a non-empty list of {', '.join(SKILLS)}")
        cfg.skills = sorted(set(skills))
    if "source" in raw:
        if raw["source"] not in SOURCES:
            raise InvalidArgument(f"config.source must be one of {', '.join(SOURCES)}")
        cfg.source = raw["source"]
    if "raters" in raw:
        if raw["raters"] not in RATERS:
            raise InvalidArgument(f"config.raters must be one of {', '.join(RATERS)}")
        cfg.raters = raw["raters"]
    if "gate" in raw:
        cfg.gate = _gate(raw["gate"])
    if method == "grpo" and "beta" in raw and cfg.beta <= 0:
        raise InvalidArgument("config.beta must be > 0 for grpo: the KL penalty keeps the policy near the base "
                              "(a guard against reward hacking)")
    if cfg.replay_images and method != "sft":
        raise InvalidArgument("config.replay_images applies to sft (dpo keeps near the base through beta, grpo "
                              "through its KL penalty)")
    if cfg.raters != "accurate":
        if method == "grpo":
            raise InvalidArgument("config.raters applies to dpo and sft: grpo learns from its reward function")
        if cfg.skills != [RATERS[cfg.raters]]:
            raise InvalidArgument(f'config.skills must be ["{RATERS[cfg.raters]}"] with {cfg.raters} raters: '
                                  f"they judge {RATERS[cfg.raters]}s")
    elif method == "dpo" and cfg.skills != ["query"] and "skills" in raw:
        raise InvalidArgument("config.skills: dpo's synthetic preferences exist for query only (captions "
                              "with config.raters \"concise\")")
    return cfg


def _number(name: str, value: Any, kind: type, lo: float, hi: float) -> Any:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = numeric and (kind is float or float(value).is_integer())
    if not ok or not lo <= value <= hi:
        what = "an integer" if kind is int else "a number"
        raise InvalidArgument(f"config.{name} must be {what} in [{lo:g}, {hi:g}], not {value!r}")
    return kind(value)


def _gate(raw: Any) -> Gate:
    if not isinstance(raw, dict):
        raise InvalidArgument("config.gate must be an object: {alias, promote, min_gain, max_skill_drop}")
    unknown = sorted(set(raw) - set(Gate.__dataclass_fields__))
    if unknown:
        raise InvalidArgument(f"config.gate.{unknown[0]} is not a known setting")
    gate = Gate()
    if "alias" in raw:
        if not isinstance(raw["alias"], str) or not raw["alias"]:
            raise InvalidArgument("config.gate.alias must be an alias name such as 'production'")
        gate.alias = raw["alias"]
    if "promote" in raw:
        if not isinstance(raw["promote"], bool):
            raise InvalidArgument("config.gate.promote must be true or false")
        gate.promote = raw["promote"]
    for key, lo, hi in (("min_gain", -1e6, 1e6), ("max_skill_drop", 0.0, 1.0)):
        if key in raw:
            setattr(gate, key, _number(f"gate.{key}", raw[key], float, lo, hi))
    return gate
