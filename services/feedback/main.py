"""Wires the feedback service: tables and migrations, the `inference.completed` consumer, ratings
with their outbox relay (`feedback.submitted`, `reward.scored`), the rater queue, reward functions,
data rights with the periodic purge, and the gRPC API."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from dreamforge.events import INFERENCE_COMPLETED
from dreamforge.image_store import ImageStore
from dreamforge.outbox import Outbox
from dreamforge.runtime import ServiceRuntime
from dreamforge.v1 import feedback_pb2_grpc
from services.feedback.data_rights import DataRights, DataSettings
from services.feedback.grpc_api import FeedbackServicer
from services.feedback.outputs import OutputStore
from services.feedback.queue import RaterQueue
from services.feedback.ratings import Ratings
from services.feedback.reward_functions import RewardFunctions
from services.feedback.settings import FeedbackSettings
from services.feedback.tables import Tables


@dataclass
class Feedback:
    """What `build` returns (`runtime.state`)."""

    outputs: OutputStore
    tables: Tables
    ratings: Ratings
    functions: RewardFunctions
    queue: RaterQueue
    data: DataRights
    outbox: Outbox


async def build(runtime: ServiceRuntime) -> Feedback:
    settings = runtime.settings_as(FeedbackSettings)
    outputs = OutputStore(runtime.db)
    tables = Tables(runtime.db)
    outbox = Outbox(runtime.db)
    runtime.migrations.extend([*outputs.migrations, tables.migration, outbox.migration(3)])
    functions = RewardFunctions(runtime.db, tables)
    ratings = Ratings(runtime.db, tables, outputs, functions, outbox, settings.output_arrival_grace_s)
    queue = RaterQueue(runtime.db, tables, outputs)
    data = DataRights(runtime.db, tables, outputs, outbox, ImageStore(settings.home / "images"),
                      DataSettings(settings.retention_days, settings.queue_overlap))

    async def on_completed(event, delivery):  # type: ignore[no-untyped-def]
        await outputs.keep(event, delivery)

    runtime.bus.subscribe(INFERENCE_COMPLETED, on_completed, durable="feedback-outputs")
    runtime.add_servicer(feedback_pb2_grpc.add_FeedbackServiceServicer_to_server,
                         FeedbackServicer(outputs, ratings, functions, queue, data), "dreamforge.v1.FeedbackService")
    purges: list[asyncio.Task[None]] = []

    async def start() -> None:
        outbox.start_relay(runtime.bus)
        purges.append(asyncio.create_task(data.run_purges(settings.purge_interval_s), name="feedback-purge"))

    async def stop() -> None:
        for task in purges:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await outbox.stop(runtime.bus)

    runtime.on_start(start)
    runtime.on_stop(stop)
    return Feedback(outputs, tables, ratings, functions, queue, data, outbox)
