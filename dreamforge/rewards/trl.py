"""Any reward function as a TRL reward callable: `(prompts, completions, **columns) -> list[float]`.

TRL's GRPO trainer passes the dataset's extra columns as keyword lists, one value per completion;
these columns are read: `skill`, `reference` (dict or JSON text), `latency_ms`, `rating`, `preferred`.
Completions may be plain strings or conversational (`[{"role": "assistant", "content": ...}]`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from dreamforge.rewards.items import ScoringItem
from dreamforge.rewards.spec import RewardFunctionSpec


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _text(value.get("content", ""))
    if isinstance(value, list):  # a conversation, or a content list of parts
        if value and isinstance(value[-1], dict) and "role" in value[-1]:
            return _text(value[-1])
        # TRL's multimodal messages carry image parts as {"type": "image", "text": None, "image": ...}
        return "".join(str(p.get("text") or "") if isinstance(p, dict) else str(p) for p in value)
    return "" if value is None else str(value)


def _reference(value: Any) -> dict[str, Any] | None:
    if isinstance(value, str) and value:
        try:
            value = json.loads(value)
        except ValueError:
            return {"answer": value}
    return value if isinstance(value, dict) else None


def _column(columns: dict[str, Any], name: str, i: int) -> Any:
    values = columns.get(name)
    return values[i] if isinstance(values, (list, tuple)) and i < len(values) else None


def as_trl_reward(spec: RewardFunctionSpec, name: str = "reward") -> Callable[..., list[float]]:
    """A callable TRL can take in `reward_funcs`; its `__name__` (what TRL logs) is `name`."""

    def reward(prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        out: list[float] = []
        for i, completion in enumerate(completions):
            latency = _column(columns, "latency_ms", i)
            preferred = _column(columns, "preferred", i)
            rating = _column(columns, "rating", i)
            item = ScoringItem(
                skill=str(_column(columns, "skill", i) or "caption"),
                prompt=_text(prompts[i]) if i < len(prompts) else "",
                output=_text(completion),
                reference=_reference(_column(columns, "reference", i)),
                latency_ms=float(latency) if isinstance(latency, (int, float)) else None,
                rating=_reference(rating) if rating is not None else None,
                preferred=bool(preferred) if preferred is not None else None,
            )
            out.append(spec.score(item).reward)
        return out

    reward.__name__ = re.sub(r"\W", "_", name) or "reward"
    reward.__qualname__ = reward.__name__
    return reward
