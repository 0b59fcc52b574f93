"""Feedback-only settings, on top of the platform's `DREAMFORGE_*` settings."""

from __future__ import annotations

from pydantic import Field

from dreamforge.settings import PlatformSettings


class FeedbackSettings(PlatformSettings):
    retention_days: int = Field(default=90, ge=0, le=36500,
                                description="Default retention of a tenant's outputs, ratings and images (0 = forever)")
    queue_overlap: int = Field(default=2, ge=1, le=20,
                               description="Default number of raters the queue hands each output to")
    purge_interval_s: float = Field(default=3600.0, gt=0, description="How often expired data is purged")
    output_arrival_grace_s: float = Field(
        default=3.0, ge=0, le=10,
        description="How long a rating waits for its output to arrive from inference.completed before a 404 "
                    "(a client may rate the moment it is served, before the event lands: inference publishes "
                    "its events once it is idle, or under steady load up to DREAMFORGE_EVENTS_LINGER_MS (1000) "
                    "after the answer)")
