"""Reward functions as data: parse and validate a JSON definition, then score items with it.

A definition is `{"terms": [{"metric", "weight", "direction", "params", "name"?}, ...], "description"?}`.
Each term's metric gives a value n in [0, 1] (see `metrics.py`); the term contributes
`weight * n` when maximizing and `weight * (1 - n)` when minimizing; the reward is the sum of the
contributions of the terms that apply to the item (a term without its inputs, e.g. `exact_match`
with no reference, contributes nothing and is left out of the breakdown).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from dreamforge.rewards.items import Score, ScoringItem
from dreamforge.rewards.metrics import METRICS, Metric, Param
from dreamforge.world.scene import COLOURS

MAX_TERMS = 32
MAX_WEIGHT = 1000.0
DIRECTIONS = ("maximize", "minimize")
_TERM_KEYS = {"metric", "weight", "direction", "params", "name"}
_TOP_KEYS = {"terms", "description", "name"}


class RewardDefinitionError(ValueError):
    """A definition that cannot be used; `field` is the JSON path of the offending value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Term:
    name: str
    metric: Metric
    weight: float
    direction: str
    params: dict[str, Any]

    def contribution(self, item: ScoringItem) -> float | None:
        n = self.metric.value(item, self.params)
        if n is None:
            return None
        return self.weight * (n if self.direction == "maximize" else 1.0 - n)


@dataclass(frozen=True)
class RewardFunctionSpec:
    terms: tuple[Term, ...]
    description: str = ""

    def score(self, item: ScoringItem) -> Score:
        parts: dict[str, float] = {}
        for term in self.terms:
            value = term.contribution(item)
            if value is not None:
                parts[term.name] = value
        return Score(reward=sum(parts.values()), terms=parts)

    def to_json(self) -> dict[str, Any]:
        """The normalised definition (defaults filled in), as stored."""
        return {"description": self.description, "terms": [
            {"name": t.name, "metric": t.metric.name, "weight": t.weight, "direction": t.direction,
             "params": t.params} for t in self.terms]}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _param(where: str, spec: Param, value: Any) -> Any:
    if spec.kind == "number":
        if not _number(value):
            raise RewardDefinitionError(where, "must be a finite number")
        if spec.minimum is not None and value <= spec.minimum:
            raise RewardDefinitionError(where, f"must be greater than {spec.minimum:g}")
        if spec.maximum is not None and value > spec.maximum:
            raise RewardDefinitionError(where, f"must be at most {spec.maximum:g}")
        return float(value)
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise RewardDefinitionError(where, "must be true or false")
        return value
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise RewardDefinitionError(where, "must be a list of non-empty strings")
    if spec.kind == "keywords" and not value:
        raise RewardDefinitionError(where, "must name at least one keyword")
    if spec.kind == "colours":
        for i, v in enumerate(value):
            if v.lower() not in COLOURS:
                raise RewardDefinitionError(f"{where}[{i}]", f"unknown colour {v!r}; one of {', '.join(COLOURS)}")
        return [v.lower() for v in value]
    return [v.strip() for v in value]


def _params(where: str, metric: Metric, raw: Any) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RewardDefinitionError(where, "must be an object")
    known = {p.name: p for p in metric.params}
    for key in raw:
        if key not in known:
            allowed = ", ".join(known) or "none"
            raise RewardDefinitionError(f"{where}.{key}",
                                        f"{metric.name} has no parameter {key!r} (allowed: {allowed})")
    out: dict[str, Any] = {}
    for name, spec in known.items():
        if name not in raw:
            if spec.required:
                raise RewardDefinitionError(f"{where}.{name}", f"{metric.name} requires {name}: {spec.doc}")
            out[name] = spec.default
        else:
            out[name] = _param(f"{where}.{name}", spec, raw[name])
    return out


def _term(i: int, raw: Any) -> Term:
    at = f"terms[{i}]"
    if not isinstance(raw, dict):
        raise RewardDefinitionError(at, "must be an object {metric, weight, direction, params}")
    for key in raw:
        if key not in _TERM_KEYS:
            raise RewardDefinitionError(f"{at}.{key}", f"unknown key; a term has {', '.join(sorted(_TERM_KEYS))}")
    metric_name = raw.get("metric")
    if not isinstance(metric_name, str) or metric_name not in METRICS:
        raise RewardDefinitionError(f"{at}.metric", f"unknown metric {metric_name!r}; one of {', '.join(METRICS)}")
    weight: Any = raw.get("weight")
    if not _number(weight) or weight == 0 or abs(weight) > MAX_WEIGHT:
        raise RewardDefinitionError(f"{at}.weight", f"must be a non-zero finite number between -{MAX_WEIGHT:g} "
                                                    f"and {MAX_WEIGHT:g}, got {weight!r}")
    direction = raw.get("direction", "maximize")
    if direction not in DIRECTIONS:
        raise RewardDefinitionError(f"{at}.direction", f"must be maximize or minimize, got {direction!r}")
    name = raw.get("name", metric_name)
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise RewardDefinitionError(f"{at}.name", "must be a non-empty string of at most 64 characters")
    metric = METRICS[metric_name]
    return Term(name, metric, float(weight), direction, _params(f"{at}.params", metric, raw.get("params")))


def parse_reward_function(definition: dict[str, Any] | str) -> RewardFunctionSpec:
    """Validate `definition` (a dict or its JSON text); raises RewardDefinitionError naming the field."""
    if isinstance(definition, str):
        try:
            definition = json.loads(definition)
        except ValueError as exc:
            raise RewardDefinitionError("definition", f"is not valid JSON: {exc}") from None
    if not isinstance(definition, dict):
        raise RewardDefinitionError("definition", "must be a JSON object with a `terms` list")
    for key in definition:
        if key not in _TOP_KEYS:
            raise RewardDefinitionError(key, f"unknown key; a definition has {', '.join(sorted(_TOP_KEYS))}")
    raw_terms = definition.get("terms")
    if not isinstance(raw_terms, list) or not raw_terms:
        raise RewardDefinitionError("terms", "must be a non-empty list of terms")
    if len(raw_terms) > MAX_TERMS:
        raise RewardDefinitionError("terms", f"at most {MAX_TERMS} terms")
    terms = [_term(i, t) for i, t in enumerate(raw_terms)]
    seen: set[str] = set()
    for i, t in enumerate(terms):
        if t.name in seen:
            raise RewardDefinitionError(f"terms[{i}].name", f"two terms are called {t.name!r}; give one a `name`")
        seen.add(t.name)
    description = definition.get("description", "")
    if not isinstance(description, str) or len(description) > 2000:
        raise RewardDefinitionError("description", "must be a string of at most 2000 characters")
    return RewardFunctionSpec(tuple(terms), description)
