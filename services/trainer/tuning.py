"""Moondream-compatible interactive tuning: finetunes, rollouts, train steps, metrics, checkpoints.

A finetune is a LoRA adapter (rank chosen at creation) on the default model, trained live in its
own worker process (`tuning_session.py`). It is also a registry model named by its id, so a saved
checkpoint is an ordinary registry version with a preview `step-<N>`: the skills endpoints serve it
under the id Moondream's client forms, `<base>/<finetune_id>@<N>` (the gateway maps that to
`<finetune_id>@step-<N>`), and inference hot-loads it like any adapter.

Request bodies are Moondream's JSON; every field is checked here (errors name it) before the
worker sees it. Rollout rewards are computed from `ground_truth` when given, as Moondream does:
detect = F1 of boxes matched at IoU >= 0.5, point = share of true boxes (or points, within 0.05)
hit by a distinct predicted point.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations

from dreamforge.adapters import pack_adapter
from dreamforge.db import Database, Migration, UtcDateTime, utcnow
from dreamforge.grpcio import InvalidArgument, NotFound
from dreamforge.images import ImageError, bytes_from_data_url_or_base64, decode_image
from dreamforge.model.evaluate import match_boxes, point_hits
from dreamforge.v1 import common_pb2, registry_pb2, trainer_pb2
from services.trainer.backends import Registry
from services.trainer.settings import TrainerSettings
from services.trainer.store import ts
from services.trainer.tuning_session import TuningSession

SKILLS = ("query", "detect", "point")
MAX_ROLLOUTS = 16
MAX_GROUPS = 64
MAX_TEXT = 2000


class TuningTables:
    def __init__(self, db: Database) -> None:
        t = db.table
        self.finetunes = sa.Table(
            t("finetunes"), db.metadata,
            sa.Column("id", sa.String(40), primary_key=True),
            sa.Column("tenant_id", sa.String(100), nullable=False, index=True),
            sa.Column("name", sa.String(200), nullable=False),
            sa.Column("rank", sa.Integer, nullable=False),
            sa.Column("step", sa.Integer, nullable=False),
            sa.Column("model_id", sa.String(64), nullable=False),
            sa.Column("created_at", UtcDateTime, nullable=False),
            sa.Column("updated_at", UtcDateTime, nullable=False),
        )
        self.checkpoints = sa.Table(
            t("checkpoints"), db.metadata,
            sa.Column("finetune_id", sa.String(40), primary_key=True),
            sa.Column("step", sa.Integer, primary_key=True),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("created_at", UtcDateTime, nullable=False),
        )
        self.metrics = sa.Table(
            t("metrics"), db.metadata,
            sa.Column("finetune_id", sa.String(40), primary_key=True),
            sa.Column("step", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(200), primary_key=True),
            sa.Column("value", sa.Float, nullable=False),
        )
        self.migrations = [Migration(20, "tuning", self._create)]

    def _create(self, op: Operations) -> None:
        for table in (self.finetunes, self.checkpoints, self.metrics):
            table.create(op.get_bind(), checkfirst=True)


def check_request(request: Any, where: str) -> dict[str, Any]:
    """A Moondream skill request with a decodable image; returns it (image left as sent)."""
    if not isinstance(request, dict):
        raise InvalidArgument(f"{where} must be an object: {{skill, image_url, question | object, settings?}}")
    skill = request.get("skill")
    if skill not in SKILLS:
        raise InvalidArgument(f"{where}.skill must be one of {', '.join(SKILLS)}")
    text_field = "question" if skill == "query" else "object"
    text = request.get(text_field)
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        raise InvalidArgument(f"{where}.{text_field} is required for {skill} (1-{MAX_TEXT} characters)")
    image = request.get("image_url")
    if not isinstance(image, str) or not image:
        raise InvalidArgument(f"{where}.image_url is required: a data: URL or base64 of a JPEG/PNG/WebP image")
    try:
        decode_image(bytes_from_data_url_or_base64(image))
    except (ImageError, ValueError) as exc:
        raise InvalidArgument(f"{where}.image_url: {exc}") from None
    settings = request.get("settings")
    if settings is not None:
        if not isinstance(settings, dict):
            raise InvalidArgument(f"{where}.settings must be an object")
        for key, lo, hi in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0), ("max_tokens", 1, 4096)):
            v = settings.get(key)
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi):
                raise InvalidArgument(f"{where}.settings.{key} must be a number in [{lo}, {hi}]")
    return request


def _boxes(raw: Any, where: str) -> list[tuple[float, float, float, float]]:
    if not isinstance(raw, list):
        raise InvalidArgument(f"{where} must be a list of {{x_min, y_min, x_max, y_max}}")
    out = []
    for i, b in enumerate(raw):
        try:
            out.append((float(b["x_min"]), float(b["y_min"]), float(b["x_max"]), float(b["y_max"])))
        except (KeyError, TypeError, ValueError):
            raise InvalidArgument(f"{where}[{i}] must be {{x_min, y_min, x_max, y_max}} numbers") from None
    return out


def _points(raw: Any, where: str) -> list[tuple[float, float]]:
    if not isinstance(raw, list):
        raise InvalidArgument(f"{where} must be a list of {{x, y}}")
    try:
        return [(float(p["x"]), float(p["y"])) for p in raw]
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument(f"{where} items must be {{x, y}} numbers") from None


def reward_of(skill: str, output: dict[str, Any], truth: dict[str, Any]) -> float | None:
    """Moondream-style reward of one rollout against `ground_truth` (None for a query)."""
    if skill == "detect" and "boxes" in truth:
        true = _boxes(truth["boxes"], "ground_truth.boxes")
        boxes = _boxes(output.get("objects", []), "output")
        if not true and not boxes:
            return 1.0
        tp = sum(v >= 0.5 for v in match_boxes(boxes, true))
        return 2.0 * tp / (len(boxes) + len(true))
    if skill == "point":
        points = _points(output.get("points", []), "output")
        if "boxes" in truth:
            true_boxes = _boxes(truth["boxes"], "ground_truth.boxes")
            return point_hits(points, true_boxes) / len(true_boxes) if true_boxes else float(not points)
        if "points" in truth:
            true_pts = _points(truth["points"], "ground_truth.points")
            around = [(x - 0.05, y - 0.05, x + 0.05, y + 0.05) for x, y in true_pts]
            return point_hits(points, around) / len(around) if around else float(not points)
    return None


class Tuning:
    def __init__(self, db: Database, registry: Registry, settings: TrainerSettings) -> None:
        self.db = db
        self.t = TuningTables(db)
        self.registry = registry
        self.settings = settings
        self.sessions: dict[str, TuningSession] = {}
        self._reaper: asyncio.Task[None] | None = None

    @property
    def migrations(self) -> list[Migration]:
        return self.t.migrations

    # -- finetunes ----------------------------------------------------------------------------
    async def create(self, caller: common_pb2.Caller, name: str, rank: int) -> trainer_pb2.Finetune:
        if not name.strip() or len(name) > 200:
            raise InvalidArgument("name is required (1-200 characters)")
        if not 1 <= rank <= 64:
            raise InvalidArgument("rank must be an integer in [1, 64]")
        ft_id = "ft-" + uuid.uuid4().hex[:16]
        model = await self.registry._call("CreateModel", registry_pb2.CreateModelRequest(
            caller=caller, name=ft_id, tags=["finetune"], description=f"tuning finetune {name!r} (rank {rank})",
            idempotency_key=ft_id), "the registry did not create the finetune's model")
        now = utcnow()
        async with self.db.transaction() as conn:
            await conn.execute(self.t.finetunes.insert().values(
                id=ft_id, tenant_id=caller.tenant_id, name=name.strip(), rank=rank, step=0, model_id=model.id,
                created_at=now, updated_at=now))
        return await self.get(caller, ft_id)

    async def _row(self, caller: common_pb2.Caller, ft_id: str) -> Any:
        if not caller.tenant_id:
            raise InvalidArgument("caller.tenant_id is required")
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(self.t.finetunes).where(
                self.t.finetunes.c.id == ft_id, self.t.finetunes.c.tenant_id == caller.tenant_id))).first()
        if row is None:
            raise NotFound(f"finetune {ft_id!r} not found")
        return row

    @staticmethod
    def _pb(row: Any) -> trainer_pb2.Finetune:
        return trainer_pb2.Finetune(finetune_id=row.id, name=row.name, rank=row.rank, step=row.step,
                                    created_at=ts(row.created_at), updated_at=ts(row.updated_at), model=row.id)

    async def get(self, caller: common_pb2.Caller, ft_id: str) -> trainer_pb2.Finetune:
        return self._pb(await self._row(caller, ft_id))

    async def list_finetunes(self, caller: common_pb2.Caller) -> list[trainer_pb2.Finetune]:
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(sa.select(self.t.finetunes).where(
                self.t.finetunes.c.tenant_id == caller.tenant_id).order_by(self.t.finetunes.c.created_at))).all()
        return [self._pb(r) for r in rows]

    async def delete(self, caller: common_pb2.Caller, ft_id: str) -> trainer_pb2.Finetune:
        row = await self._row(caller, ft_id)
        session = self.sessions.pop(ft_id, None)
        if session is not None:
            await session.close()
        async with self.db.transaction() as conn:
            for table in (self.t.checkpoints, self.t.metrics):
                await conn.execute(table.delete().where(table.c.finetune_id == ft_id))
            await conn.execute(self.t.finetunes.delete().where(self.t.finetunes.c.id == ft_id))
        await self.registry._call("DeleteModel", registry_pb2.GetModelRequest(caller=caller, model=row.model_id),
                                  "the registry did not delete the finetune's model")
        shutil.rmtree(self.settings.tuning_dir / ft_id, ignore_errors=True)
        return self._pb(row)

    async def _session(self, row: Any) -> TuningSession:
        session = self.sessions.get(row.id)
        if session is None:
            latest = await self._latest_checkpoint(row.id)
            adapter = self.settings.tuning_dir / row.id / f"step-{latest}" if latest else None
            session = TuningSession(self.settings.default_model, row.rank, adapter, self.settings.worker_threads)
            self.sessions[row.id] = session
        if not session.alive:  # (re)started from the last checkpoint: the step goes back to it
            latest = await self._latest_checkpoint(row.id)
            session.adapter = self.settings.tuning_dir / row.id / f"step-{latest}" if latest else None
            await self._set_step(row.id, latest)
        return session

    async def _latest_checkpoint(self, ft_id: str) -> int:
        c = self.t.checkpoints
        async with self.db.engine.connect() as conn:
            return int((await conn.execute(sa.select(sa.func.max(c.c.step)).where(c.c.finetune_id == ft_id)))
                       .scalar_one() or 0)

    async def _set_step(self, ft_id: str, step: int) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(self.t.finetunes.update().where(self.t.finetunes.c.id == ft_id)
                               .values(step=step, updated_at=utcnow()))

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for session in self.sessions.values():
            await session.close()
        self.sessions.clear()

    def start(self) -> None:
        """Stop the workers of finetunes idle for `tuning_idle_s` (their memory goes back; the next
        call restarts from the last checkpoint)."""
        self._reaper = asyncio.create_task(self._reap(), name="tuning-reaper")

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(min(30.0, self.settings.tuning_idle_s))
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if session.alive and not session.lock.locked() and \
                        now - session.last_used > self.settings.tuning_idle_s:
                    await session.close()

    # -- rollouts and train steps ---------------------------------------------------------------
    async def rollouts(self, caller: common_pb2.Caller, ft_id: str, body: dict[str, Any]) -> dict[str, Any]:
        row = await self._row(caller, ft_id)
        request = check_request(body.get("request"), "request")
        n = body.get("num_rollouts", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_ROLLOUTS:
            raise InvalidArgument(f"num_rollouts must be an integer in [1, {MAX_ROLLOUTS}]")
        truth = body.get("ground_truth")
        if truth is not None and not isinstance(truth, dict):
            raise InvalidArgument("ground_truth must be an object: {boxes} for detect, {points | boxes} for point")
        session = await self._session(row)
        rollouts = await session.call("rollouts", request=request, n=n)
        rewards = None
        if truth is not None:
            scored = [reward_of(request["skill"], r["output"], truth) for r in rollouts]
            rewards = None if any(s is None for s in scored) else scored
        return {"request": request, "rollouts": rollouts, "rewards": rewards}

    async def train_step(self, caller: common_pb2.Caller, ft_id: str, body: dict[str, Any]) -> dict[str, Any]:
        row = await self._row(caller, ft_id)
        groups = body.get("groups")
        if not isinstance(groups, list) or not 1 <= len(groups) <= MAX_GROUPS:
            raise InvalidArgument(f"groups must be a list of 1-{MAX_GROUPS} RL or SFT groups")
        for i, group in enumerate(groups):
            _check_group(group, f"groups[{i}]")
        lr = body.get("lr", 2e-4)
        if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not 0 < lr <= 1e-2:
            raise InvalidArgument("lr must be a number in (0, 0.01]")
        session = await self._session(row)
        result: dict[str, Any] = await session.call("train_step", groups=groups, lr=float(lr))
        step = (await self._row(caller, ft_id)).step + (1 if result["applied"] else 0)
        await self._set_step(ft_id, step)
        return {"step": step, **result}

    async def log_metrics(self, caller: common_pb2.Caller, ft_id: str, body: dict[str, Any]) -> dict[str, Any]:
        await self._row(caller, ft_id)
        step = body.get("step")
        metrics = body.get("metrics")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise InvalidArgument("step must be an integer >= 0")
        if not isinstance(metrics, dict) or len(metrics) > 1000 or not all(
                isinstance(k, str) and 0 < len(k) <= 200 and isinstance(v, (int, float)) and not isinstance(v, bool)
                for k, v in metrics.items()):
            raise InvalidArgument("metrics must be an object of up to 1000 name -> number pairs")
        async with self.db.transaction() as conn:
            for name, value in metrics.items():
                m = self.t.metrics.c
                await conn.execute(self.t.metrics.delete().where(m.finetune_id == ft_id, m.step == step,
                                                                 m.name == name))
                await conn.execute(self.t.metrics.insert().values(finetune_id=ft_id, step=step, name=name,
                                                                  value=float(value)))
        return {"ok": True, "step": step, "logged_count": len(metrics)}

    # -- checkpoints ----------------------------------------------------------------------------
    async def save(self, caller: common_pb2.Caller, ft_id: str) -> trainer_pb2.Checkpoint:
        row = await self._row(caller, ft_id)
        session = await self._session(row)
        step = (await self._row(caller, ft_id)).step
        final = self.settings.tuning_dir / ft_id / f"step-{step}"
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".step-{step}.", dir=final.parent))
        try:
            await session.call("save", dir=str(tmp))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        version = await self.registry.create_version(
            caller, row.model_id, artifact=pack_adapter(final), idempotency_key=f"{ft_id}:{step}",
            training_config_json=json.dumps({"tuning": True, "finetune_id": ft_id, "rank": row.rank, "step": step}),
            notes=f"checkpoint of finetune {ft_id} at step {step}")
        await self.registry._call("CreatePreview", registry_pb2.CreatePreviewRequest(
            caller=caller, model=row.model_id, version=version.version, name=f"step-{step}"),
            "the registry did not name the checkpoint")
        async with self.db.transaction() as conn:
            await conn.execute(self.t.checkpoints.delete().where(self.t.checkpoints.c.finetune_id == ft_id,
                                                                 self.t.checkpoints.c.step == step))
            await conn.execute(self.t.checkpoints.insert().values(finetune_id=ft_id, step=step,
                                                                  version=version.version, created_at=utcnow()))
        return await self._checkpoint(ft_id, step)

    async def _checkpoint(self, ft_id: str, step: int) -> trainer_pb2.Checkpoint:
        c = self.t.checkpoints
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(c).where(c.c.finetune_id == ft_id, c.c.step == step))).first()
        if row is None:
            raise NotFound(f"finetune {ft_id!r} has no checkpoint at step {step}")
        return trainer_pb2.Checkpoint(checkpoint_id=f"{ft_id}@{step}", finetune_id=ft_id, step=step,
                                      version=row.version, created_at=ts(row.created_at))

    async def checkpoints(self, caller: common_pb2.Caller, ft_id: str) -> list[trainer_pb2.Checkpoint]:
        await self._row(caller, ft_id)
        c = self.t.checkpoints
        async with self.db.engine.connect() as conn:
            steps = (await conn.execute(sa.select(c.c.step).where(c.c.finetune_id == ft_id)
                                        .order_by(c.c.step.desc()))).scalars().all()
        return [await self._checkpoint(ft_id, s) for s in steps]

    async def delete_checkpoint(self, caller: common_pb2.Caller, ft_id: str, step: int) -> trainer_pb2.Checkpoint:
        row = await self._row(caller, ft_id)
        checkpoint = await self._checkpoint(ft_id, step)
        await self.registry._call("DeletePreview", registry_pb2.DeletePreviewRequest(
            caller=caller, model=row.model_id, name=f"step-{step}"), "the registry did not remove the checkpoint")
        async with self.db.transaction() as conn:
            await conn.execute(self.t.checkpoints.delete().where(self.t.checkpoints.c.finetune_id == ft_id,
                                                                 self.t.checkpoints.c.step == step))
        shutil.rmtree(self.settings.tuning_dir / ft_id / f"step-{step}", ignore_errors=True)
        return checkpoint


def _check_group(group: Any, where: str) -> None:
    if not isinstance(group, dict):
        raise InvalidArgument(f"{where} must be an object")
    mode = group.get("mode", "rl")
    request = check_request(group.get("request"), f"{where}.request")
    if mode == "sft":
        if not isinstance(group.get("target"), dict):
            raise InvalidArgument(f"{where}.target is required for an sft group")
        target = group["target"]
        if request["skill"] == "query" and not isinstance(target.get("answer"), str):
            raise InvalidArgument(f"{where}.target.answer is required for a query")
        if request["skill"] == "detect":
            _boxes(target.get("boxes", target.get("objects")), f"{where}.target.boxes")
        if request["skill"] == "point":
            _points(target.get("points"), f"{where}.target.points")
        return
    if mode != "rl":
        raise InvalidArgument(f"{where}.mode must be 'rl' or 'sft'")
    rollouts, rewards = group.get("rollouts"), group.get("rewards")
    if not isinstance(rollouts, list) or not 1 <= len(rollouts) <= MAX_ROLLOUTS:
        raise InvalidArgument(f"{where}.rollouts must be a list of 1-{MAX_ROLLOUTS} rollouts")
    if not isinstance(rewards, list) or len(rewards) != len(rollouts) or not all(
            isinstance(r, (int, float)) and not isinstance(r, bool) and abs(r) < 1e9 for r in rewards):
        raise InvalidArgument(f"{where}.rewards must be one number per rollout")
    for j, rollout in enumerate(rollouts):
        if not isinstance(rollout, dict) or not isinstance(rollout.get("output"), dict):
            raise InvalidArgument(f"{where}.rollouts[{j}].output must be an object (as /rollouts returned it)")
        output = rollout["output"]
        if request["skill"] == "query" and not isinstance(output.get("answer"), str):
            raise InvalidArgument(f"{where}.rollouts[{j}].output.answer must be text")
        if request["skill"] == "detect":
            _boxes(output.get("objects", []), f"{where}.rollouts[{j}].output.objects")
        if request["skill"] == "point":
            _points(output.get("points", []), f"{where}.rollouts[{j}].output.points")
