"""Inter-rater agreement per task: Krippendorff's alpha (the `krippendorff` package).

A task is a (skill, rating kind) pair: thumbs and flags are nominal data, 1-5 scores ordinal,
pairwise preferences nominal over the unordered pair of outputs (which one won). Alpha handles
any number of raters and missing ratings; it is undefined (NaN, with a note) until at least two
raters rated a common item and the ratings are not all the same value.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import krippendorff
import numpy as np

LEVELS = {"thumbs": "nominal", "flag": "nominal", "score": "ordinal", "pairwise": "nominal"}


@dataclass(frozen=True)
class TaskAgreement:
    skill: str
    kind: str
    level: str
    alpha: float
    items: int
    raters: int
    ratings: int
    note: str = ""


def _code(kind: str, value: object, unit: tuple[str, ...]) -> float:
    if kind == "score":
        return float(value)  # type: ignore[arg-type]
    if kind == "pairwise":
        return float(unit.index(str(value))) if str(value) in unit else math.nan
    return float({"up": 1, "down": 0, "wrong": 0, "unsafe": 1, "other": 2}.get(str(value), math.nan))


def agreement(ratings: list[tuple[str, str, str, str, object, str]]) -> list[TaskAgreement]:
    """`ratings`: (skill, kind, rater_id, request_id, value, other_request_id) tuples."""
    by_task: dict[tuple[str, str], dict[tuple[str, ...], dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for skill, kind, rater, request_id, value, other in ratings:
        if kind not in LEVELS:
            continue
        unit = tuple(sorted((request_id, other))) if kind == "pairwise" else (request_id,)
        by_task[(skill, kind)][unit][rater] = _code(kind, value, unit)
    out = []
    for (skill, kind), units in sorted(by_task.items()):
        shared = {u: v for u, v in units.items() if len(v) >= 2}
        raters = sorted({r for v in units.values() for r in v})
        n = sum(len(v) for v in units.values())
        alpha, note = math.nan, ""
        if not shared:
            note = "no item has ratings from two raters yet"
        else:
            matrix = np.full((len(raters), len(shared)), np.nan)
            for j, values in enumerate(shared.values()):
                for rater, code in values.items():
                    matrix[raters.index(rater), j] = code
            if len(set(matrix[~np.isnan(matrix)].tolist())) < 2:
                note = "every rating has the same value: alpha is undefined (perfect but uninformative agreement)"
            else:
                level: Any = LEVELS[kind]
                alpha = float(krippendorff.alpha(reliability_data=matrix, level_of_measurement=level))
        out.append(TaskAgreement(skill, kind, LEVELS[kind], alpha, len(shared), len(raters), n, note))
    return out
