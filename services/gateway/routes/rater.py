"""Rater routes: the queue hands each rater (a key with scope `rater`) outputs to rate, never the
same one twice, each to `queue_overlap` raters; agreement reports Krippendorff's alpha per task."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import get
from litestar.params import Parameter

from services.gateway.auth import requires
from services.gateway.feedback_client import FeedbackClient
from services.gateway.keys import Principal
from services.gateway.routes.admin import SECURITY
from services.gateway.schemas import feedback as s


@get("/v1/rater/queue/next", operation_id="nextQueueItem", tags=["feedback"], security=SECURITY,
     guards=[requires("rater")], summary="The next served output for this rater to rate (item null when done)")
async def next_item(feedback: FeedbackClient, principal: Principal,
                    skill: Annotated[Literal["", "caption", "query", "detect", "point", "chat"],
                                     Parameter(description="Only outputs of this skill")] = "") -> s.QueueItemOut:
    return await feedback.next_item(principal, skill)


@get("/v1/rater/agreement", operation_id="raterAgreement", tags=["feedback"], security=SECURITY,
     guards=[requires("rater", "ml")], summary="Inter-rater agreement (Krippendorff's alpha) per skill and kind")
async def agreement(feedback: FeedbackClient, principal: Principal) -> s.AgreementOut:
    return await feedback.agreement(principal)


RATER_ROUTES: list[Any] = [next_item, agreement]
