"""Jobs and policies on SQL: every status change and the event announcing it commit together.

Job lifecycle: `queued` -> `running` -> `succeeded` | `failed` | `cancelled` (a queued job may be
cancelled directly). Each step's progress row and its `training.progress` event are written in one
transaction, and so are the final status and `training.finished` / `training.failed` (outbox), so
the events exist iff the changes do. Every query is scoped by tenant; another tenant's job is
NOT_FOUND.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from dreamforge.db import Database, utcnow
from dreamforge.events import TRAINING_FAILED, TRAINING_FINISHED, TRAINING_PROGRESS, new_meta
from dreamforge.grpcio import FailedPrecondition, InvalidArgument, NotFound
from dreamforge.v1 import events_pb2, trainer_pb2
from services.trainer.tables import TrainerTables

PRODUCER = "trainer"
ACTIVE = ("queued", "running")
FINAL = ("succeeded", "failed", "cancelled")
MAX_PAGE = 200


def ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    out = Timestamp()
    out.FromDatetime(value)
    return out


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.t = TrainerTables(db)
        self.outbox = self.t.outbox

    @property
    def migrations(self) -> list[Any]:
        return self.t.migrations

    # -- jobs ---------------------------------------------------------------------------------
    async def create_job(self, tenant_id: str, values: dict[str, Any], idempotency_key: str = "") -> str:
        """Insert a queued job; the same idempotency key returns the first job's id."""
        job_id = "job_" + uuid.uuid4().hex[:20]
        now = utcnow()
        row = {"id": job_id, "tenant_id": tenant_id, "status": "queued", "reason": "", "result_version": 0,
               "promoted": False, "eval_before_json": "{}", "eval_after_json": "{}", "gate_json": "{}",
               "worker_pid": 0, "created_at": now, "updated_at": now,
               "idempotency_key": idempotency_key or None, **values}
        try:
            async with self.db.transaction() as conn:
                await conn.execute(self.t.jobs.insert().values(**row))
        except IntegrityError:
            if not idempotency_key:
                raise
            async with self.db.engine.connect() as conn:
                found = (await conn.execute(sa.select(self.t.jobs.c.id).where(
                    self.t.jobs.c.tenant_id == tenant_id,
                    self.t.jobs.c.idempotency_key == idempotency_key))).scalar_one()
            return str(found)
        return job_id

    async def row(self, job_id: str, tenant_id: str | None = None) -> Row[Any]:
        q = sa.select(self.t.jobs).where(self.t.jobs.c.id == job_id)
        if tenant_id is not None:
            q = q.where(self.t.jobs.c.tenant_id == tenant_id)
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(q)).first()
        if row is None:
            raise NotFound(f"training job {job_id!r} not found")
        return row

    async def get_job(self, tenant_id: str, job_id: str) -> trainer_pb2.TrainingJob:
        row = await self.row(job_id, tenant_id)
        return await self.job_pb(row, with_history=True)

    async def list_jobs(self, tenant_id: str, *, model_id: str = "", status: str = "", page_size: int = 0,
                        page_token: str = "") -> tuple[list[trainer_pb2.TrainingJob], str]:
        size = page_size or 50
        if not 1 <= size <= MAX_PAGE:
            raise InvalidArgument(f"page.page_size must be in [1, {MAX_PAGE}]")
        if status and status not in (*ACTIVE, *FINAL):
            raise InvalidArgument(f"status {status!r} is invalid: use one of {', '.join((*ACTIVE, *FINAL))}")
        j = self.t.jobs
        q = sa.select(j).where(j.c.tenant_id == tenant_id)
        if model_id:
            q = q.where(j.c.model_id == model_id)
        if status:
            q = q.where(j.c.status == status)
        if page_token:
            if not page_token.startswith("job_"):
                raise InvalidArgument("page.page_token is not a token this service issued")
            q = q.where(j.c.id < page_token)
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(q.order_by(j.c.id.desc()).limit(size + 1))).all()
        jobs = [await self.job_pb(r) for r in rows[:size]]
        return jobs, (rows[size - 1].id if len(rows) > size else "")

    async def queue(self) -> list[Row[Any]]:
        """Queued jobs, oldest first (across tenants)."""
        j = self.t.jobs
        async with self.db.engine.connect() as conn:
            return list((await conn.execute(sa.select(j).where(j.c.status == "queued")
                                            .order_by(j.c.created_at, j.c.id))).all())

    async def active_for_model(self, tenant_id: str, model_id: str) -> int:
        j = self.t.jobs
        async with self.db.engine.connect() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(j).where(
                j.c.tenant_id == tenant_id, j.c.model_id == model_id, j.c.status.in_(ACTIVE)))).scalar_one())

    async def running(self) -> list[Row[Any]]:
        j = self.t.jobs
        async with self.db.engine.connect() as conn:
            return list((await conn.execute(sa.select(j).where(j.c.status == "running"))).all())

    async def mark_running(self, job_id: str, pid: int = 0) -> bool:
        """queued -> running; False when the job left the queue meanwhile (cancelled)."""
        j = self.t.jobs
        async with self.db.transaction() as conn:
            result = await conn.execute(j.update().where(j.c.id == job_id, j.c.status == "queued")
                                        .values(status="running", worker_pid=pid, updated_at=utcnow()))
        return bool(result.rowcount == 1)

    async def set_pid(self, job_id: str, pid: int) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(self.t.jobs.update().where(self.t.jobs.c.id == job_id).values(worker_pid=pid))

    async def record_progress(self, row: Row[Any], progress: events_pb2.TrainingProgress) -> None:
        progress.meta.CopyFrom(new_meta(row.tenant_id, PRODUCER, f"{row.id}.progress.{progress.step}"))
        progress.job_id, progress.model_id = row.id, row.model_id
        async with self.db.transaction() as conn:
            fresh = await self.db.insert_ignore(conn, self.t.progress, {
                "job_id": row.id, "step": progress.step, "payload": progress.SerializeToString()})
            if fresh:
                await self.outbox.add(conn, TRAINING_PROGRESS, progress)
        self.outbox.notify()

    async def record_evals(self, job_id: str, before: dict[str, float], after: dict[str, float]) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(self.t.jobs.update().where(self.t.jobs.c.id == job_id).values(
                eval_before_json=json.dumps(before), eval_after_json=json.dumps(after), updated_at=utcnow()))

    async def succeed(self, row: Row[Any], version: int, promoted: bool, gate: dict[str, Any],
                      before: dict[str, float], after: dict[str, float]) -> None:
        event = events_pb2.TrainingFinished(
            meta=new_meta(row.tenant_id, PRODUCER, f"{row.id}.finished"), job_id=row.id, model_id=row.model_id,
            version=version, promoted=promoted, eval_before=before, eval_after=after)
        async with self.db.transaction() as conn:
            await conn.execute(self.t.jobs.update().where(self.t.jobs.c.id == row.id).values(
                status="succeeded", result_version=version, promoted=promoted, gate_json=json.dumps(gate),
                eval_before_json=json.dumps(before), eval_after_json=json.dumps(after), updated_at=utcnow()))
            await self.outbox.add(conn, TRAINING_FINISHED, event)
        self.outbox.notify()

    async def fail(self, row: Row[Any], reason: str, status: str = "failed",
                   release: Any = None) -> None:
        """Mark the job failed (or cancelled) with `reason`, publish `training.failed`, and run
        `release(conn)` (giving its rewards back to the buffer) in the same transaction."""
        event = events_pb2.TrainingFailed(meta=new_meta(row.tenant_id, PRODUCER, f"{row.id}.failed"),
                                          job_id=row.id, model_id=row.model_id, reason=f"{status}: {reason}")
        async with self.db.transaction() as conn:
            result = await conn.execute(self.t.jobs.update().where(
                self.t.jobs.c.id == row.id, self.t.jobs.c.status.in_(ACTIVE)).values(
                status=status, reason=reason[:4000], updated_at=utcnow()))
            if result.rowcount == 1:
                await self.outbox.add(conn, TRAINING_FAILED, event)
                if release is not None:
                    await release(conn)
        self.outbox.notify()

    async def cancel_queued(self, tenant_id: str, job_id: str) -> Row[Any]:
        row = await self.row(job_id, tenant_id)
        if row.status in FINAL:
            raise FailedPrecondition(f"training job {job_id!r} already ended ({row.status})")
        if row.status == "queued":
            await self.fail(row, "cancelled before it started", status="cancelled")
        return await self.row(job_id, tenant_id)

    # -- conversion ---------------------------------------------------------------------------
    async def history(self, job_id: str) -> list[events_pb2.TrainingProgress]:
        p = self.t.progress
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(sa.select(p.c.payload).where(p.c.job_id == job_id)
                                       .order_by(p.c.step))).scalars().all()
        return [events_pb2.TrainingProgress.FromString(b) for b in rows]

    async def queue_position(self, row: Row[Any]) -> int:
        if row.status != "queued":
            return 0
        j = self.t.jobs
        async with self.db.engine.connect() as conn:
            ahead = (await conn.execute(sa.select(sa.func.count()).select_from(j).where(
                j.c.status == "queued", j.c.created_at < row.created_at))).scalar_one()
        return int(ahead) + 1

    async def job_pb(self, row: Row[Any], with_history: bool = False) -> trainer_pb2.TrainingJob:
        return trainer_pb2.TrainingJob(
            id=row.id, model=row.model, base_version=row.base_version, reward_function_id=row.reward_function_id,
            reward_function_version=row.reward_function_version, reward_function_json=row.reward_function_json,
            method=row.method, config_json=row.config_json, status=row.status, reason=row.reason,
            result_version=row.result_version, created_at=ts(row.created_at), updated_at=ts(row.updated_at),
            trigger=row.trigger, promoted=row.promoted, eval_before=json.loads(row.eval_before_json),
            eval_after=json.loads(row.eval_after_json), gate_json=row.gate_json,
            history=await self.history(row.id) if with_history else [], queue_position=await self.queue_position(row))
