"""Ratings: validation per kind, submission exactly once, edit and withdrawal by their rater.

Submitting writes the rating, `feedback.submitted` and one `reward.scored` per active reward
function in ONE transaction (the outbox): a crash either loses the whole submission (the client
saw no answer and retries) or keeps all of it, and the relay publishes each event with its id as
`Nats-Msg-Id`, so a re-publish after a crash is dropped by JetStream. A client idempotency key
maps a retry to the first rating; without one, the unique (rater, output, kind) key refuses a
second rating of the same output (409 naming the first, which can be edited instead).
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from dreamforge.db import Database, utcnow
from dreamforge.events import FEEDBACK_SUBMITTED, REWARD_SCORED
from dreamforge.grpcio import AlreadyExists, InvalidArgument, NotFound, PermissionDenied, ServiceError
from dreamforge.outbox import Outbox
from services.feedback.outputs import OutputStore
from services.feedback.paging import Page, page_window
from services.feedback.reward_functions import RewardFunctions
from services.feedback.scoring import reward_events, submitted_event
from services.feedback.tables import Tables


class Aborted(ServiceError):
    code = grpc.StatusCode.ABORTED


KINDS = ("thumbs", "score", "pairwise", "correction", "flag")
FLAGS = ("wrong", "unsafe", "other")
MAX_CORRECTION = 4000
MAX_COMMENT = 2000


@dataclass(frozen=True)
class Rating:
    id: str
    tenant_id: str
    request_id: str
    rater_id: str
    kind: str
    value_json: str
    other_request_id: str
    comment: str
    revision: int
    created_at: datetime
    updated_at: datetime


def _decode(value_json: str) -> Any:
    try:
        return json.loads(value_json) if value_json else None
    except ValueError:
        raise InvalidArgument("value is not valid JSON") from None


def check_value(kind: str, value: Any, request_id: str, other_request_id: str) -> Any:
    """The rating's value in its stored form; InvalidArgument saying what each kind takes."""
    if kind == "thumbs":
        if value in ("up", "down"):
            return value
        if isinstance(value, bool):
            return "up" if value else "down"
        raise InvalidArgument('value: a thumbs rating is "up" or "down"')
    if kind == "score":
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
                and float(value).is_integer() and 1 <= value <= 5:
            return int(value)
        raise InvalidArgument("value: a score is a whole number from 1 to 5")
    if kind == "pairwise":
        if not other_request_id:
            raise InvalidArgument("other_request_id: a pairwise preference compares request_id with "
                                  "other_request_id (two outputs of the same input)")
        if other_request_id == request_id:
            raise InvalidArgument("other_request_id must differ from request_id")
        if value not in (request_id, other_request_id):
            raise InvalidArgument("value: a pairwise preference is the request id of the preferred output "
                                  "(request_id or other_request_id)")
        return value
    if other_request_id:
        raise InvalidArgument("other_request_id is only for pairwise preferences")
    if kind == "correction":
        if isinstance(value, str) and value.strip() and len(value) <= MAX_CORRECTION:
            return value.strip()
        raise InvalidArgument(f"value: a correction is the corrected output as text (1-{MAX_CORRECTION} characters)")
    if kind == "flag":
        if value in FLAGS:
            return value
        raise InvalidArgument(f"value: a flag is one of {', '.join(FLAGS)}")
    raise InvalidArgument(f"kind {kind!r} is not a rating kind: use one of {', '.join(KINDS)}")


class Ratings:
    def __init__(self, db: Database, tables: Tables, outputs: OutputStore, functions: RewardFunctions,
                 outbox: Outbox, arrival_grace_s: float) -> None:
        self.db = db
        self.arrival_grace_s = arrival_grace_s
        self.t = tables.ratings
        self.outputs = outputs
        self.functions = functions
        self.outbox = outbox

    async def _output(self, tenant_id: str, request_id: str, field: str) -> Any:
        if not request_id:
            raise InvalidArgument(f"{field} is required: the request id of a served output")
        row = await self.outputs.get(tenant_id, request_id)
        # The output reaches this service through inference.completed, up to ~1 s after the client got
        # its answer under steady load (inference's relay waits for a quiet moment): a rating sent at
        # once waits for it rather than failing.
        deadline = time.monotonic() + self.arrival_grace_s
        while row is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            row = await self.outputs.get(tenant_id, request_id)
        if row is None:
            raise NotFound(f"{field}: no served output {request_id!r} in your tenant (an output can be rated "
                           "once it has been served; if it was served a moment ago, retry shortly)")
        return row

    async def _by_idempotency(self, tenant_id: str, rater_id: str, key: str) -> Rating | None:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(self.t).where(
                self.t.c.tenant_id == tenant_id, self.t.c.rater_id == rater_id,
                self.t.c.idempotency_key == key))).first()
        return _rating(row) if row is not None else None

    async def submit(self, tenant_id: str, rater_id: str, request_id: str, kind: str, value_json: str,
                     other_request_id: str = "", comment: str = "", idempotency_key: str = "") -> Rating:
        if kind not in KINDS:
            raise InvalidArgument(f"kind {kind!r} is not a rating kind: use one of {', '.join(KINDS)}")
        value = check_value(kind, _decode(value_json), request_id, other_request_id)
        if len(comment) > MAX_COMMENT:
            raise InvalidArgument(f"comment is {len(comment)} characters; the limit is {MAX_COMMENT}")
        if len(idempotency_key) > 200:
            raise InvalidArgument("idempotency key is longer than 200 characters")
        if idempotency_key and (seen := await self._by_idempotency(tenant_id, rater_id, idempotency_key)):
            return self._same_or_conflict(seen, request_id, kind)
        output = await self._output(tenant_id, request_id, "request_id")
        other = await self._output(tenant_id, other_request_id, "other_request_id") if kind == "pairwise" else None
        if other is not None and other.image_ref != output.image_ref:
            raise InvalidArgument("other_request_id: a pairwise preference compares two outputs of the same "
                                  "image; these two were served for different images")
        now = utcnow()
        rating = Rating(f"fb_{secrets.token_hex(10)}", tenant_id, request_id, rater_id, kind, json.dumps(value),
                        other_request_id, comment, 1, now, now)
        functions = await self.functions.active(tenant_id)
        try:
            async with self.db.transaction() as conn:
                await conn.execute(self.t.insert().values(
                    id=rating.id, tenant_id=tenant_id, request_id=request_id, rater_id=rater_id, kind=kind,
                    value_json=rating.value_json, other_request_id=other_request_id, comment=comment, revision=1,
                    idempotency_key=idempotency_key or None, created_at=now, updated_at=now))
                await self._emit(conn, rating, output, other, functions)
        except IntegrityError:
            return await self._after_conflict(tenant_id, rater_id, request_id, kind, idempotency_key)
        self.outbox.notify()
        return rating

    async def _emit(self, conn: Any, rating: Rating, output: Any, other: Any, functions: Any) -> None:
        await self.outbox.add(conn, FEEDBACK_SUBMITTED, submitted_event(rating.tenant_id, rating))
        for event in reward_events(rating.tenant_id, rating, output, other, functions):
            await self.outbox.add(conn, REWARD_SCORED, event)

    def _same_or_conflict(self, seen: Rating, request_id: str, kind: str) -> Rating:
        if (seen.request_id, seen.kind) != (request_id, kind):
            raise AlreadyExists(f"idempotency key already used for rating {seen.id} ({seen.kind} of "
                                f"{seen.request_id}): use a new key for a new rating")
        return seen

    async def _after_conflict(self, tenant_id: str, rater_id: str, request_id: str, kind: str, key: str) -> Rating:
        if key and (seen := await self._by_idempotency(tenant_id, rater_id, key)):
            return self._same_or_conflict(seen, request_id, kind)  # a concurrent retry committed first
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(self.t.c.id).where(
                self.t.c.tenant_id == tenant_id, self.t.c.rater_id == rater_id, self.t.c.request_id == request_id,
                self.t.c.kind == kind))).first()
        first = f" (rating {row.id}: edit it with PUT /v1/feedback/{row.id})" if row is not None else ""
        raise AlreadyExists(f"you already gave output {request_id!r} a {kind} rating{first}")

    async def _own(self, tenant_id: str, rater_id: str, rating_id: str) -> Rating:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(self.t).where(
                self.t.c.id == rating_id, self.t.c.tenant_id == tenant_id))).first()
        if row is None:
            raise NotFound(f"no rating {rating_id!r} in your tenant")
        if row.rater_id != rater_id:
            raise PermissionDenied(f"rating {rating_id!r} belongs to another rater: only its rater can change it")
        return _rating(row)

    async def update(self, tenant_id: str, rater_id: str, rating_id: str, value_json: str,
                     comment: str | None) -> Rating:
        """A new value (a new revision, scored and emitted again)."""
        old = await self._own(tenant_id, rater_id, rating_id)
        value = check_value(old.kind, _decode(value_json), old.request_id, old.other_request_id)
        if comment is not None and len(comment) > MAX_COMMENT:
            raise InvalidArgument(f"comment is {len(comment)} characters; the limit is {MAX_COMMENT}")
        output = await self._output(tenant_id, old.request_id, "request_id")
        other = await self._output(tenant_id, old.other_request_id, "other_request_id") \
            if old.kind == "pairwise" else None
        functions = await self.functions.active(tenant_id)
        new = Rating(old.id, tenant_id, old.request_id, rater_id, old.kind, json.dumps(value), old.other_request_id,
                     old.comment if comment is None else comment, old.revision + 1, old.created_at, utcnow())
        try:
            async with self.db.transaction() as conn:
                # compare-and-set on the revision: a concurrent edit makes this one change no row
                changed = (await conn.execute(self.t.update().where(
                    self.t.c.id == rating_id, self.t.c.revision == old.revision).values(
                    value_json=new.value_json, comment=new.comment, revision=new.revision,
                    updated_at=new.updated_at))).rowcount
                if changed != 1:
                    raise IntegrityError("revision moved", None, ValueError("concurrent edit"))
                await self._emit(conn, new, output, other, functions)
        except IntegrityError:
            raise Aborted(f"rating {rating_id!r} was changed or withdrawn concurrently: read it again and retry") \
                from None
        self.outbox.notify()
        return new

    async def withdraw(self, tenant_id: str, rater_id: str, rating_id: str) -> Rating:
        """Delete the rating (its past reward events stay in the stream's history)."""
        old = await self._own(tenant_id, rater_id, rating_id)
        async with self.db.transaction() as conn:
            await conn.execute(self.t.delete().where(self.t.c.id == rating_id))
        return old

    async def list(self, tenant_id: str, request_id: str, rater_id: str | None, page_size: int,
                   page_token: str) -> Page[Rating]:
        offset, limit = page_window(page_size, page_token)
        q = sa.select(self.t).where(self.t.c.tenant_id == tenant_id)
        if request_id:
            q = q.where(sa.or_(self.t.c.request_id == request_id, self.t.c.other_request_id == request_id))
        if rater_id is not None:
            q = q.where(self.t.c.rater_id == rater_id)
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(q.order_by(self.t.c.created_at, self.t.c.id)
                                       .offset(offset).limit(limit + 1))).all()
        return Page.of([_rating(r) for r in rows], offset, limit)


def _rating(r: Any) -> Rating:
    return Rating(r.id, r.tenant_id, r.request_id, r.rater_id, r.kind, r.value_json, r.other_request_id,
                  r.comment, r.revision, r.created_at, r.updated_at)
