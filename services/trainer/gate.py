"""The release gate: promote a trained version only when it is measurably better and no worse.

Primary metric per method (held-out, see `heldout.py`): grpo `heldout_reward`, dpo
`preference_win_rate`, sft `correction_match`. The gate holds when the primary metric rose by
more than `min_gain` and no skill metric fell by more than `max_skill_drop`. The verdict keeps
every comparison, so a version left unpromoted says why.
"""

from __future__ import annotations

from typing import Any

from services.trainer.config import Gate
from services.trainer.heldout import GUARDED_METRICS

PRIMARY = {"grpo": "heldout_reward", "dpo": "preference_win_rate", "sft": "correction_match"}


def decide(method: str, before: dict[str, float], after: dict[str, float], gate: Gate) -> dict[str, Any]:
    primary = PRIMARY[method]
    reasons: list[str] = []
    gain = after.get(primary, 0.0) - before.get(primary, 0.0)
    if primary not in after:
        reasons.append(f"{primary} was not measured")
    elif gain <= gate.min_gain:
        reasons.append(f"{primary} {before.get(primary, 0.0):.4f} -> {after[primary]:.4f} did not rise by more "
                       f"than {gate.min_gain:g}")
    drops = {k: round(before[k] - after[k], 5) for k in GUARDED_METRICS if k in before and k in after}
    for name, drop in drops.items():
        if drop > gate.max_skill_drop:
            reasons.append(f"{name} dropped by {drop:.4f} (more than {gate.max_skill_drop:g})")
    return {"passed": not reasons, "primary": primary, "gain": round(gain, 5), "skill_drops": drops,
            "reasons": reasons, "alias": gate.alias, "promote": gate.promote}
