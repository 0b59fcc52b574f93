"""Turning ratings and outputs into rewards.

A rating becomes one `reward.scored` event per active reward function. The event carries what
the trainer needs to learn without calling back: image ref, prompt, skill, the output, the
reward and its per-term breakdown; a pairwise preference is scored on the preferred output and
also carries the rejected one; a correction carries the corrected text (a supervised target).
Event ids are `<rating id>:r<revision>:<function id>:v<version>`: re-emitting after a crash or
redelivery is recognised as the same event, an edited rating (new revision) is a new one.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from dreamforge.events import new_meta
from dreamforge.rewards import Score, ScoringItem
from dreamforge.v1 import events_pb2
from services.feedback.reward_functions import RewardFunctionRow

PRODUCER = "feedback"


def item_of(output: Any, reference: dict[str, Any] | None = None, rating: dict[str, Any] | None = None,
            preferred: bool | None = None) -> ScoringItem:
    """A stored output row (or anything with its columns) as a ScoringItem."""
    return ScoringItem(skill=output.skill, prompt=output.prompt, output=output.output_json, reference=reference,
                       latency_ms=float(output.latency_ms), rating=rating, preferred=preferred)


def rating_item(rating: sa.Row[Any] | Any, output: Any, other: Any | None) -> tuple[ScoringItem, Any, Any | None]:
    """(item to score, the output it is about, the rejected output for pairwise)."""
    value = json.loads(rating.value_json)
    if rating.kind == "pairwise":
        chosen, rejected = (output, other) if value == output.request_id else (other, output)
        return item_of(chosen, preferred=True), chosen, rejected
    if rating.kind == "correction":
        return item_of(output, reference={"correction": value}), output, None
    return item_of(output, rating={"kind": rating.kind, "value": value}), output, None


def reward_events(tenant_id: str, rating: Any, output: Any, other: Any | None,
                  functions: list[RewardFunctionRow]) -> list[events_pb2.RewardScored]:
    item, scored, rejected = rating_item(rating, output, other)
    events = []
    for rf in functions:
        score: Score = rf.spec.score(item)
        event_id = f"{rating.id}:r{rating.revision}:{rf.id}:v{rf.version}"
        events.append(events_pb2.RewardScored(
            meta=new_meta(tenant_id, PRODUCER, event_id), feedback_id=rating.id, request_id=scored.request_id,
            model_id=scored.model_id, version=scored.version, reward_function_id=rf.id,
            reward_function_version=rf.version, reward=score.reward, terms=score.terms, skill=scored.skill,
            prompt=scored.prompt, image_ref=scored.image_ref, output_json=scored.output_json,
            rejected_output_json=rejected.output_json if rejected is not None else "",
            correction=json.loads(rating.value_json) if rating.kind == "correction" else ""))
    return events


def submitted_event(tenant_id: str, rating: Any) -> events_pb2.FeedbackSubmitted:
    return events_pb2.FeedbackSubmitted(
        meta=new_meta(tenant_id, PRODUCER, f"{rating.id}:r{rating.revision}:submitted"), feedback_id=rating.id,
        request_id=rating.request_id, rater_id=rating.rater_id, kind=rating.kind, value_json=rating.value_json,
        other_request_id=rating.other_request_id)
