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
from collections.abc import Awaitable
from dataclasses import dataclass

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

    def keep_image(self, request: Prepared) -> asyncio.Future[None]:
        """Start storing the request's image; `record` awaits it before the events exist.

        Started when the request is planned, so the write overlaps generation instead of
        delaying the answer. A request that then fails leaves its image stored without events
        (content-addressed, so harmless; the retention purge removes it)."""
        if self.images is None or not request.image_bytes:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        task = asyncio.ensure_future(self._save(self.images, request.caller.tenant_id, request.image_bytes))
        task.add_done_callback(_retrieved)  # a failed request never awaits it: no "never retrieved" noise
        return task

    @staticmethod
    async def _save(images: ImageStore, tenant_id: str, data: bytes) -> None:
        await asyncio.to_thread(images.save, tenant_id, data)

    async def record(self, served: Served, image_kept: Awaitable[object] | None = None) -> bool:
        """Queue both events; False when this request id was recorded before (a retry).

        The image is stored before its events exist, so every `image_ref` a consumer sees can
        be loaded: `image_kept` is the write `keep_image` started (started here when None)."""
        request, route, out = served.request, served.route, served.output
        await (image_kept if image_kept is not None else self.keep_image(request))
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
        rows = self.outbox.rows([(INFERENCE_COMPLETED, completed), (USAGE_RECORDED, usage)])
        try:
            # One statement, no look-up first: the unique event ids refuse a retried request id.
            await self.db.write(lambda conn: self.outbox.insert(conn, rows))
        except IntegrityError:
            return False  # this request id was recorded before (a retry, possibly concurrent)
        self.outbox.notify()
        return True


def _retrieved(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


def _prompt(request: Prepared) -> str:
    """The text the model was given (what a trainer needs to learn from a rating)."""
    return prompt_for(SkillCall(request.skill, request.image.image, request.text))
