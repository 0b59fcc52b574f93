"""Reward functions as data: a metric library, validated JSON definitions and TRL-style callables.

    spec = parse_reward_function({"terms": [{"metric": "exact_match", "weight": 1.0}]})
    spec.score(ScoringItem(skill="query", prompt="what colour?", output="red", reference={"answer": "red"}))
    as_trl_reward(spec)(prompts, completions, skill=[...], reference=[...])

Used by the feedback service (scoring ratings into `reward.scored`, `POST /v1/rewards/score`) and the
trainer (GRPO reward functions); `dreamforge.model.evaluate` shares the matching helpers.
"""

from dreamforge.rewards.items import Score, ScoringItem
from dreamforge.rewards.metrics import METRICS, Metric
from dreamforge.rewards.spec import RewardDefinitionError, RewardFunctionSpec, Term, parse_reward_function
from dreamforge.rewards.trl import as_trl_reward

__all__ = [
    "METRICS",
    "Metric",
    "RewardDefinitionError",
    "RewardFunctionSpec",
    "Score",
    "ScoringItem",
    "Term",
    "as_trl_reward",
    "parse_reward_function",
]
