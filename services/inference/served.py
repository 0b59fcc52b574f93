"""What every answered request leaves behind: `inference.completed` and `usage.recorded`.

Both go into the inference outbox in one transaction (both or neither), with event ids
derived from the request id (`<request_id>:completed`, `<request_id>:usage`): a retried
request (same id) finds its events already there and adds nothing, the relay publishes
each row with `Nats-Msg-Id` = event id so JetStream drops a re-publish, and feedback and
billing keep each event id once. Nothing a retry does can count twice.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from dreamforge.db import Database
from dreamforge.events import INFERENCE_COMPLETED, USAGE_RECORDED, new_meta
from dreamforge.image_store import ImageStore
from dreamforge.outbox import Outbox
from dreamforge.v1 import events_pb2
from services.inference.resolver import Route
from services.inference.runtime.base import SkillCall, SkillOutput
from services.inference.runtime.prompts import prompt_for
from services.inference.validation import Prepared

PRODUCER = "inference"


@dataclass(frozen=True)
class Served:
    request: Prepared
    route: Route
    output: SkillOutput
    latency_ms: float


def completed_event_id(request_id: str) -> str:
    return f"{request_id}:completed"


def usage_event_id(request_id: str) -> str:
    return f"{request_id}:usage"


def output_json(served: Served) -> str:
    """The skill's answer as JSON (what feedback stores for rating)."""
    out = served.output
    body: dict[str, object] = {"text": out.text}
    if served.request.skill == "detect":
        body["boxes"] = [list(b) for b in out.boxes]
    if served.request.skill == "point":
        body["points"] = [list(p) for p in out.points]
    return json.dumps(body)


class ServedEvents:
    def __init__(self, db: Database, outbox: Outbox, images: ImageStore | None = None) -> None:
        self.db = db
        self.outbox = outbox
        self.images = images

    async def _keep_image(self, request: Prepared) -> None:
        """Store the image before its events exist, so every `image_ref` a consumer sees can be loaded."""
        if self.images is not None and request.image_bytes:
            await asyncio.to_thread(self.images.save, request.caller.tenant_id, request.image_bytes)

    async def record(self, served: Served) -> bool:
        """Queue both events; False when this request id was recorded before (a retry)."""
        request, route, out = served.request, served.route, served.output
        await self._keep_image(request)
        tenant, key_id = request.caller.tenant_id, request.caller.key_id
        completed = events_pb2.InferenceCompleted(
            meta=new_meta(tenant, PRODUCER, completed_event_id(request.request_id)), request_id=request.request_id,
            model_id=route.model_id, version=route.version, alias=route.alias, skill=request.skill,
            prompt=_prompt(request), image_ref=request.image.sha256,
            output_json=output_json(served), latency_ms=served.latency_ms, key_id=key_id)
        usage = events_pb2.UsageRecorded(
            meta=new_meta(tenant, PRODUCER, usage_event_id(request.request_id)), request_id=request.request_id,
            key_id=key_id, model_id=route.model_id, version=route.version, alias=route.alias,
            is_preview=route.is_preview, skill=request.skill, images=1, input_tokens=out.input_tokens,
            output_tokens=out.output_tokens, latency_ms=served.latency_ms)
        table = self.outbox.table
        try:
            async with self.db.transaction() as conn:
                seen = (await conn.execute(sa.select(table.c.event_id).where(
                    table.c.event_id.in_([completed.meta.event_id, usage.meta.event_id])))).first()
                if seen is not None:
                    return False
                await self.outbox.add(conn, INFERENCE_COMPLETED, completed)
                await self.outbox.add(conn, USAGE_RECORDED, usage)
        except IntegrityError:
            return False  # a concurrent retry of the same request committed first
        self.outbox.notify()
        return True


def _prompt(request: Prepared) -> str:
    """The text the model was given (what a trainer needs to learn from a rating)."""
    return prompt_for(SkillCall(request.skill, request.image.image, request.text))
