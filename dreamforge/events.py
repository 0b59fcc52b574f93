"""The event catalogue: every JetStream event, its subject, stream, payload and parties.

This table is the single source of truth; ARCHITECTURE.md renders the same list.
Subjects are `dreamforge.v1.<event>.<tenant_id>`, so a consumer (or the gateway's
WebSocket relay) can filter one tenant with a subject wildcard.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from dreamforge.v1 import common_pb2, events_pb2

SUBJECT_ROOT = "dreamforge.v1"
DLQ_ROOT = "dreamforge.dlq"
DLQ_STREAM = "DF_DLQ"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class EventType:
    name: str                     # e.g. "model.updated"
    payload: type[Message]
    stream: str
    producer: str
    consumers: tuple[str, ...]
    description: str

    def subject(self, tenant_id: str) -> str:
        if not _TOKEN.match(tenant_id):
            raise ValueError(f"tenant id {tenant_id!r} cannot be a subject token")
        return f"{SUBJECT_ROOT}.{self.name}.{tenant_id}"

    @property
    def all_tenants(self) -> str:
        """Subject filter matching this event for every tenant."""
        return f"{SUBJECT_ROOT}.{self.name}.*"


MODEL_UPDATED = EventType(
    "model.updated", events_pb2.ModelUpdated, "DF_MODELS", "registry", ("inference", "gateway"),
    "An alias or preview of a model now points at another version (promote, rollback, preview).",
)
INFERENCE_COMPLETED = EventType(
    "inference.completed", events_pb2.InferenceCompleted, "DF_INFERENCE", "inference", ("feedback",),
    "A served request's prompt, image reference, output, version and latency, kept for rating.",
)
USAGE_RECORDED = EventType(
    "usage.recorded", events_pb2.UsageRecorded, "DF_USAGE", "inference", ("billing",),
    "One billable unit of work: tenant, key, model, version, skill, images, tokens, latency.",
)
FEEDBACK_SUBMITTED = EventType(
    "feedback.submitted", events_pb2.FeedbackSubmitted, "DF_FEEDBACK", "feedback", ("gateway",),
    "A rater's rating of a served output (thumbs, score, pairwise, correction, flag).",
)
REWARD_SCORED = EventType(
    "reward.scored", events_pb2.RewardScored, "DF_FEEDBACK", "feedback", ("trainer",),
    "A rating turned into a reward under the tenant's reward function, with the trainer's inputs.",
)
TRAINING_PROGRESS = EventType(
    "training.progress", events_pb2.TrainingProgress, "DF_TRAINING", "trainer", ("gateway",),
    "One optimisation step of a training job: loss, reward mean/std, KL, learning rate, ETA.",
)
TRAINING_FINISHED = EventType(
    "training.finished", events_pb2.TrainingFinished, "DF_TRAINING", "trainer", ("gateway",),
    "A job registered a new version (and whether the release gate promoted it).",
)
TRAINING_FAILED = EventType(
    "training.failed", events_pb2.TrainingFailed, "DF_TRAINING", "trainer", ("gateway",),
    "A job failed or was cancelled, with the reason.",
)

CATALOGUE: tuple[EventType, ...] = (
    MODEL_UPDATED, INFERENCE_COMPLETED, USAGE_RECORDED, FEEDBACK_SUBMITTED,
    REWARD_SCORED, TRAINING_PROGRESS, TRAINING_FINISHED, TRAINING_FAILED,
)
BY_NAME = {event.name: event for event in CATALOGUE}


def streams() -> dict[str, list[str]]:
    """Stream name -> subjects it stores, derived from the catalogue (plus the DLQ)."""
    out: dict[str, list[str]] = {}
    for event in CATALOGUE:
        out.setdefault(event.stream, []).append(f"{SUBJECT_ROOT}.{event.name}.*")
    out[DLQ_STREAM] = [f"{DLQ_ROOT}.>"]
    return out


def event_from_subject(subject: str) -> EventType:
    """The catalogue entry for a concrete subject such as dreamforge.v1.model.updated.t1."""
    parts = subject.split(".")
    name = ".".join(parts[2:-1])
    if subject.startswith(SUBJECT_ROOT + ".") and name in BY_NAME:
        return BY_NAME[name]
    raise KeyError(f"no event type for subject {subject!r}")


def new_meta(tenant_id: str, producer: str, event_id: str | None = None) -> common_pb2.EventMeta:
    """A fresh envelope. Pass `event_id` when the id must be derived from a business key
    (e.g. the request id), so a retried publish is recognised as the same event."""
    now = Timestamp()
    now.GetCurrentTime()
    return common_pb2.EventMeta(
        event_id=event_id or uuid.uuid4().hex, tenant_id=tenant_id, occurred_at=now, producer=producer
    )
