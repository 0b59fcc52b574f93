"""The online trigger: per tenant and model, start a job when enough new rewards have arrived.

A policy (`GET|PUT /v1/training/policy`) says when: every `every_n_rewards` buffered rewards, or
every `every_minutes` once at least `min_rewards` are waiting (whichever comes first), and how:
method, config, reward function (by id, inline, or — when it names none — the reward function
that scored the buffered events). The trigger checks on every reward that arrives and every
`policy_poll_s`; it never starts a second job for a model with one queued or running, and the
job it starts trains on the buffered rewards (`source: rewards`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from datetime import timedelta

import sqlalchemy as sa

from dreamforge.db import utcnow
from dreamforge.grpcio import InvalidArgument, ServiceError
from dreamforge.v1 import common_pb2, trainer_pb2
from services.trainer.buffer import RewardBuffer
from services.trainer.config import METHODS, parse_config
from services.trainer.jobs import JobService, check_caller
from services.trainer.store import JobStore

log = logging.getLogger("dreamforge.trainer.policy")
MAX_N = 1_000_000


class Policies:
    def __init__(self, store: JobStore, buffer: RewardBuffer, jobs: JobService, poll_s: float) -> None:
        self.store = store
        self.t = store.t.policies
        self.buffer = buffer
        self.jobs = jobs
        self.poll_s = poll_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- API ----------------------------------------------------------------------------------
    async def get(self, caller: common_pb2.Caller, model: str) -> trainer_pb2.TrainingPolicy:
        tenant = check_caller(caller)
        if not model.strip():
            raise InvalidArgument("model is required")
        base = await self.jobs.registry.base(caller, model.strip(), 0)
        async with self.store.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(self.t).where(self.t.c.tenant_id == tenant,
                                                              self.t.c.model_id == base.model_id))).first()
        policy = (trainer_pb2.TrainingPolicy.FromString(row.policy) if row is not None
                  else trainer_pb2.TrainingPolicy(model=base.model_name, enabled=False, method="grpo"))
        policy.pending_rewards = await self.buffer.pending(tenant, base.model_id)
        if row is not None and row.last_triggered_at is not None:
            policy.last_triggered_at.FromDatetime(row.last_triggered_at)
        return policy

    async def put(self, caller: common_pb2.Caller, policy: trainer_pb2.TrainingPolicy) -> trainer_pb2.TrainingPolicy:
        tenant = check_caller(caller)
        if not policy.model.strip():
            raise InvalidArgument("policy.model is required")
        for name in ("every_n_rewards", "every_minutes", "min_rewards"):
            if not 0 <= getattr(policy, name) <= MAX_N:
                raise InvalidArgument(f"policy.{name} must be in [0, {MAX_N}]")
        if policy.enabled and not (policy.every_n_rewards or policy.every_minutes):
            raise InvalidArgument("policy.every_n_rewards or policy.every_minutes must be > 0 when enabled")
        method = policy.method or "grpo"
        if method not in METHODS:
            raise InvalidArgument(f"policy.method {method!r} is invalid: use one of {', '.join(METHODS)}")
        cfg = parse_config(method, policy.config_json or "{}")
        cfg.source = "rewards"
        if policy.reward_function_json.strip():
            policy.reward_function_json = json.dumps(self.jobs.rewards.parse_inline(
                policy.reward_function_json, "policy.reward_function"))
        elif policy.reward_function_id:
            await self.jobs.rewards.fetch(caller, policy.reward_function_id, policy.reward_function_version)
        base = await self.jobs.registry.base(caller, policy.model.strip(), 0)
        stored = trainer_pb2.TrainingPolicy()
        stored.CopyFrom(policy)
        stored.model, stored.method, stored.config_json = base.model_name, method, cfg.resolved(method).to_json()
        stored.ClearField("pending_rewards")
        stored.ClearField("last_triggered_at")
        values = {"model": base.model_name, "policy": stored.SerializeToString(), "updated_at": utcnow()}
        async with self.store.db.transaction() as conn:
            updated = await conn.execute(self.t.update().where(self.t.c.tenant_id == tenant,
                                                               self.t.c.model_id == base.model_id).values(**values))
            if updated.rowcount == 0:
                await conn.execute(self.t.insert().values(tenant_id=tenant, model_id=base.model_id,
                                                          last_triggered_at=None, **values))
        self.wake()
        return await self.get(caller, base.model_id)

    # -- the trigger --------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="trainer-policies")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("policy check failed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def check(self) -> list[str]:
        """Start the jobs that enabled policies call for now; returns their ids."""
        started: list[str] = []
        pending = await self.buffer.pending_by_model()
        async with self.store.db.engine.connect() as conn:
            rows = (await conn.execute(sa.select(self.t))).all()
        now = utcnow()
        for row in rows:
            policy = trainer_pb2.TrainingPolicy.FromString(row.policy)
            waiting = pending.get((row.tenant_id, row.model_id), 0)
            if not policy.enabled or waiting < max(policy.min_rewards, 1):
                continue
            by_count = policy.every_n_rewards > 0 and waiting >= policy.every_n_rewards
            by_time = policy.every_minutes > 0 and (
                row.last_triggered_at is None or now - row.last_triggered_at >= timedelta(minutes=policy.every_minutes))
            if not (by_count or by_time) or await self.store.active_for_model(row.tenant_id, row.model_id):
                continue
            try:
                job = await self._start(row.tenant_id, row.model_id, policy)
            except ServiceError as exc:
                log.warning("policy could not start a job", extra={"model_id": row.model_id, "error": str(exc)})
                continue
            async with self.store.db.transaction() as conn:
                await conn.execute(self.t.update().where(self.t.c.tenant_id == row.tenant_id,
                                                         self.t.c.model_id == row.model_id)
                                   .values(last_triggered_at=now))
            started.append(job.id)
            log.info("policy started a training job", extra={"job_id": job.id, "pending": waiting})
        return started

    async def _start(self, tenant: str, model_id: str, policy: trainer_pb2.TrainingPolicy) -> trainer_pb2.TrainingJob:
        caller = common_pb2.Caller(tenant_id=tenant, key_id="trainer-policy", scopes=["ml"])
        fn_id, fn_version = policy.reward_function_id, policy.reward_function_version
        if not fn_id and not policy.reward_function_json:
            fn_id = await self._events_reward_function(tenant, model_id)
        config = json.loads(policy.config_json or "{}")
        config["source"] = "rewards"
        return await self.jobs.create(trainer_pb2.CreateJobRequest(
            caller=caller, model=model_id, method=policy.method or "grpo", config_json=json.dumps(config),
            reward_function_id=fn_id, reward_function_version=fn_version,
            reward_function_json=policy.reward_function_json), trigger="policy")

    async def _events_reward_function(self, tenant: str, model_id: str) -> str:
        """The reward function most of the buffered events were scored with."""
        r = self.buffer.rewards
        async with self.store.db.engine.connect() as conn:
            payloads = (await conn.execute(sa.select(r.c.payload_json).where(
                r.c.tenant_id == tenant, r.c.model_id == model_id, r.c.consumed_by_job.is_(None)).limit(500))).scalars()
            ids = Counter(json.loads(p).get("rewardFunctionId", "") for p in payloads)
        ids.pop("", None)
        return ids.most_common(1)[0][0] if ids else ""
