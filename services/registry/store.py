"""All of the registry's domain logic, on SQLite or PostgreSQL: models, immutable versions,
aliases with a rollback history, previews, references, diffs, idempotency keys.

Rules this module enforces (see README.md for the user-facing version):
- Every query is scoped by `caller.tenant_id`; another tenant's model is NOT_FOUND.
- Every write that depends on what it read runs in one transaction that first locks
  the model row (`SELECT ... FOR UPDATE` on PostgreSQL; on SQLite a no-op UPDATE as
  the first statement takes the database write lock before anything is read). That
  is what keeps version numbers gap-free and the alias history a consistent stack
  under concurrent calls.
- Every alias change writes its `model.updated` event to the outbox in the same
  transaction, so the event exists iff the change does.
- Errors are dreamforge.grpcio ServiceErrors whose message says what to fix.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import grpc
import sqlalchemy as sa
from opentelemetry import trace
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dreamforge.db import Database, Migration, utcnow
from dreamforge.events import MODEL_UPDATED, new_meta
from dreamforge.grpcio import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, ServiceError
from dreamforge.outbox import Outbox
from dreamforge.v1 import events_pb2
from services.registry import validation as v
from services.registry.artifacts import DEFAULT_CHUNK, ArtifactMissing, ArtifactStore
from services.registry.diff import diff_versions
from services.registry.records import (
    PRODUCTION,
    STAGING,
    Alias,
    AliasChange,
    Caller,
    Diff,
    Model,
    Page,
    Resolution,
    Version,
)
from services.registry.tables import RegistryTables

PRODUCER = "registry"
DEFAULT_MAX_ARTIFACT_BYTES = 512 * 1024 * 1024
_tracer = trace.get_tracer("dreamforge.registry")


class DataLoss(ServiceError):
    """A version row names an artifact the artifact store no longer has."""

    code = grpc.StatusCode.DATA_LOSS


class RegistryStore:
    def __init__(
        self, db: Database, artifacts: ArtifactStore, *, max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES
    ) -> None:
        self.db = db
        self.t = RegistryTables(db)
        self.outbox: Outbox = self.t.outbox
        self.artifacts = artifacts
        self.max_artifact_bytes = max_artifact_bytes

    @property
    def migrations(self) -> list[Migration]:
        return self.t.migrations

    async def migrate(self) -> list[int]:
        return await self.db.migrate(self.migrations)

    # == models ===========================================================================
    async def create_model(
        self, caller: Caller, name: str, *, base_checkpoint: str = "", parameter_count: int = 0,
        memory_bytes: int = 0, tags: Iterable[str] = (), description: str = "", idempotency_key: str = "",
    ) -> Model:
        v.check_caller(caller)
        v.check_model_name(name)
        tag_list = v.check_tags(tags)
        v.check_text(base_checkpoint, "base_checkpoint", 4096)
        v.check_text(description, "description")
        v.check_non_negative(parameter_count, "parameter_count")
        v.check_non_negative(memory_bytes, "memory_bytes")
        v.check_idempotency_key(idempotency_key)
        fp = v.fingerprint("CreateModel", {
            "name": name, "base_checkpoint": base_checkpoint, "parameter_count": parameter_count,
            "memory_bytes": memory_bytes, "tags": tag_list, "description": description})
        m = self.t.models
        try:
            async with self._write("create_model", caller) as conn:
                if idempotency_key:
                    prior = await self._claim_key(conn, caller, idempotency_key, "CreateModel", fp)
                    if prior is not None:
                        row = (await conn.execute(sa.select(m).where(
                            m.c.tenant_id == caller.tenant_id, m.c.id == prior))).first()
                        if row is None:
                            raise FailedPrecondition(
                                f"the model created with idempotency_key {idempotency_key!r} has since been "
                                "deleted; use a new idempotency_key to create it again")
                        return await self._model(conn, row)
                taken = (await conn.execute(sa.select(m.c.id).where(
                    m.c.tenant_id == caller.tenant_id, m.c.name == name))).first()
                if taken is not None:
                    raise _name_taken(name)
                model_id = f"{v.MODEL_ID_PREFIX}{uuid.uuid4().hex}"
                await conn.execute(m.insert().values(
                    id=model_id, tenant_id=caller.tenant_id, name=name, base_checkpoint=base_checkpoint,
                    parameter_count=parameter_count, memory_bytes=memory_bytes, description=description,
                    created_at=utcnow(), created_by=caller.key_id, latest_version=0))
                if tag_list:
                    await conn.execute(self.t.model_tags.insert(), [
                        {"model_id": model_id, "tag": tag, "tenant_id": caller.tenant_id} for tag in tag_list])
                if idempotency_key:
                    await self._settle_key(conn, caller, idempotency_key, model_id)
                row = (await conn.execute(sa.select(m).where(m.c.id == model_id))).one()
                return await self._model(conn, row)
        except IntegrityError:  # a concurrent CreateModel took the name between our check and insert
            raise _name_taken(name) from None

    async def get_model(self, caller: Caller, model: str) -> Model:
        v.check_caller(caller)
        async with self.db.engine.connect() as conn:
            return await self._model(conn, await self._find_model(conn, caller, model))

    async def list_models(self, caller: Caller, *, page_size: int = 0, page_token: str = "",
                          tag: str = "") -> Page[Model]:
        """This tenant's models by name, optionally only those tagged `tag`."""
        v.check_caller(caller)
        size = v.page_size(page_size)
        if tag:
            v.check_tags([tag])
        after = v.decode_page_token(page_token, "models", f"{caller.tenant_id}/{tag}")
        m, tags = self.t.models, self.t.model_tags
        query = sa.select(m).where(m.c.tenant_id == caller.tenant_id).order_by(m.c.name).limit(size + 1)
        if after is not None:
            query = query.where(m.c.name > str(after))
        if tag:
            query = query.where(m.c.id.in_(sa.select(tags.c.model_id).where(
                tags.c.tenant_id == caller.tenant_id, tags.c.tag == tag)))
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            more = len(rows) > size
            rows = rows[:size]
            tag_map = await self._tags(conn, [r.id for r in rows])
        items = [_model(r, tag_map.get(r.id, ())) for r in rows]
        token = v.encode_page_token("models", f"{caller.tenant_id}/{tag}", rows[-1].name) if more else ""
        return Page(items, token)

    async def delete_model(self, caller: Caller, model: str) -> None:
        """Remove the model with its versions, aliases, previews and history. Each alias and
        preview it had gets a `delete` event. Artifacts stay (content-addressed, maybe shared)."""
        v.check_caller(caller)
        async with self._write("delete_model", caller) as conn:
            row = await self._find_model(conn, caller, model, lock=True)
            aliases = (await conn.execute(sa.select(self.t.aliases).where(
                self.t.aliases.c.model_id == row.id).order_by(self.t.aliases.c.name))).all()
            for alias in aliases:
                await self._emit(conn, caller, row, alias.name, alias.is_preview, 0, alias.version, "delete")
            for table in (self.t.alias_history, self.t.aliases, self.t.versions, self.t.model_tags):
                await conn.execute(table.delete().where(table.c.model_id == row.id))
            await conn.execute(self.t.models.delete().where(self.t.models.c.id == row.id))

    # == versions =========================================================================
    async def create_version(
        self, caller: Caller, model: str, *, parent_version: int = 0, artifact: bytes = b"",
        training_config_json: str = "", reward_function_json: str = "",
        eval_metrics: Mapping[str, float] | None = None, notes: str = "", idempotency_key: str = "",
    ) -> Version:
        """Append version latest+1. The artifact is stored (content-addressed) before the
        transaction: a failed insert leaves at most an unreferenced blob, never a dangling row."""
        v.check_caller(caller)
        v.check_non_negative(parent_version, "parent_version")
        v.parse_json_object(training_config_json, "training_config_json")
        v.parse_json_object(reward_function_json, "reward_function_json")
        metrics = v.check_metrics(eval_metrics or {})
        v.check_text(notes, "notes")
        v.check_idempotency_key(idempotency_key)
        if len(artifact) > self.max_artifact_bytes:
            raise InvalidArgument(f"artifact is {len(artifact)} bytes; the limit is {self.max_artifact_bytes} "
                                  "(DREAMFORGE_MAX_ARTIFACT_BYTES)")
        async with self.db.engine.connect() as conn:
            await self._find_model(conn, caller, model)  # fail fast, before uploading the bytes
        sha = await self.artifacts.put(artifact) if artifact else ""
        vt = self.t.versions
        async with self._write("create_version", caller) as conn:
            row = await self._find_model(conn, caller, model, lock=True)
            if idempotency_key:
                fp = v.fingerprint("CreateVersion", {
                    "model_id": row.id, "parent_version": parent_version, "artifact_sha256": sha,
                    "training_config_json": training_config_json, "reward_function_json": reward_function_json,
                    "eval_metrics": metrics, "notes": notes})
                prior = await self._claim_key(conn, caller, idempotency_key, "CreateVersion", fp)
                if prior is not None:
                    return _version(await self._version_row(conn, row, int(prior.rpartition(":")[2])))
            if parent_version > row.latest_version:
                raise NotFound(f"parent_version {parent_version} does not exist: model {row.name!r} has "
                               f"{_range(row.latest_version)} (0 = the base checkpoint)")
            number = row.latest_version + 1
            await conn.execute(vt.insert().values(
                model_id=row.id, version=number, parent_version=parent_version, artifact_sha256=sha,
                artifact_bytes=len(artifact), training_config_json=training_config_json,
                reward_function_json=reward_function_json, eval_metrics_json=json.dumps(metrics),
                notes=notes, created_at=utcnow(), created_by=caller.key_id))
            await conn.execute(self.t.models.update().where(self.t.models.c.id == row.id)
                               .values(latest_version=number))
            if idempotency_key:
                await self._settle_key(conn, caller, idempotency_key, f"{row.id}:{number}")
            return _version(await self._version_row(conn, row, number))

    async def get_version(self, caller: Caller, model: str, version: int) -> Version:
        v.check_caller(caller)
        v.check_version_number(version)
        async with self.db.engine.connect() as conn:
            row = await self._find_model(conn, caller, model)
            return _version(await self._version_row(conn, row, version))

    async def list_versions(self, caller: Caller, model: str, *, page_size: int = 0,
                            page_token: str = "") -> Page[Version]:
        """Versions oldest first."""
        v.check_caller(caller)
        size = v.page_size(page_size)
        vt = self.t.versions
        async with self.db.engine.connect() as conn:
            row = await self._find_model(conn, caller, model)
            after = v.decode_page_token(page_token, "versions", f"{caller.tenant_id}/{row.id}")
            query = sa.select(vt).where(vt.c.model_id == row.id).order_by(vt.c.version).limit(size + 1)
            if after is not None:
                query = query.where(vt.c.version > int(after))
            rows = (await conn.execute(query)).all()
        more = len(rows) > size
        items = [_version(r) for r in rows[:size]]
        token = v.encode_page_token("versions", f"{caller.tenant_id}/{row.id}", items[-1].version) if more else ""
        return Page(items, token)

    async def open_artifact(self, caller: Caller, model: str, version: int,
                            chunk_size: int = DEFAULT_CHUNK) -> tuple[Version, AsyncIterator[bytes]]:
        """The version and an iterator over its artifact bytes (NOT_FOUND without an artifact)."""
        ver = await self.get_version(caller, model, version)
        if not ver.artifact_sha256:
            raise NotFound(f"version {version} of model {model!r} has no artifact (it was created without "
                           "artifact bytes)")
        try:
            return ver, await self.artifacts.open(ver.artifact_sha256, chunk_size)
        except ArtifactMissing:
            raise DataLoss(f"artifact {ver.artifact_sha256} of version {version} of model {model!r} is missing "
                           f"from the artifact store ({self.artifacts.describe()})") from None

    async def diff_versions(self, caller: Caller, model: str, from_version: int, to_version: int) -> Diff:
        v.check_caller(caller)
        v.check_version_number(from_version, "from_version")
        v.check_version_number(to_version, "to_version")
        async with self.db.engine.connect() as conn:
            row = await self._find_model(conn, caller, model)
            before = _version(await self._version_row(conn, row, from_version))
            after = _version(await self._version_row(conn, row, to_version))
        return Diff(before, after, diff_versions(before, after))

    # == aliases ==========================================================================
    async def promote(self, caller: Caller, model: str, version: int, alias: str = PRODUCTION) -> Alias:
        """Point `alias` at `version`. Already pointing there: a no-op (no history, no event)."""
        v.check_caller(caller)
        alias = v.check_alias_name(alias or PRODUCTION)
        v.check_version_number(version)
        async with self._write("promote", caller, alias=alias, version=version) as conn:
            row = await self._find_model(conn, caller, model, lock=True)
            await self._version_row(conn, row, version)
            current = await self._alias_row(conn, row.id, alias)
            if current is not None and current.is_preview:
                raise FailedPrecondition(f"{alias!r} is a preview of model {row.name!r}, not an alias: move it "
                                         "with CreatePreview, or promote to another alias name")
            if current is not None and current.version == version:
                return _alias(current)
            return await self._move(conn, caller, row, alias, False, version, current, "promote")

    async def rollback(self, caller: Caller, model: str, alias: str = PRODUCTION, to_version: int = 0) -> Alias:
        """Move `alias` back. The alias's history is a stack: a promote pushes, a rollback pops.
        `to_version` 0 pops the current version (promote 1, 2, 3; rollback -> 2; rollback -> 1;
        rollback -> FAILED_PRECONDITION). `to_version` N pops down to N if N is on the stack,
        else pushes N; N equal to the current version is a no-op."""
        v.check_caller(caller)
        alias = v.check_alias_name(alias or PRODUCTION)
        v.check_non_negative(to_version, "to_version")
        async with self._write("rollback", caller, alias=alias, version=to_version) as conn:
            row = await self._find_model(conn, caller, model, lock=True)
            current = await self._alias_row(conn, row.id, alias)
            if current is None:
                raise FailedPrecondition(f"model {row.name!r} has no alias {alias!r}: nothing to roll back; "
                                         "promote a version first")
            if current.is_preview:
                raise FailedPrecondition(f"{alias!r} is a preview of model {row.name!r}: previews are not "
                                         "rolled back; point it elsewhere with CreatePreview")
            if to_version:
                await self._version_row(conn, row, to_version)
                target = to_version
                if target == current.version:
                    return _alias(current)
            else:
                stack = await self._stack(conn, row.id, alias)
                if len(stack) < 2:
                    raise FailedPrecondition(
                        f"nothing to roll back to: alias {alias!r} of model {row.name!r} points at version "
                        f"{current.version} and no earlier version remains in its history; pass to_version "
                        "to choose one")
                target = stack[-2]
            return await self._move(conn, caller, row, alias, False, target, current, "rollback")

    async def create_preview(self, caller: Caller, model: str, version: int, name: str) -> Alias:
        """A preview is an alias with `is_preview`; names are shared with aliases. Creating an
        existing preview again moves it (same version: no-op)."""
        v.check_caller(caller)
        v.check_alias_name(name, "preview name")
        if name in (PRODUCTION, STAGING):
            raise InvalidArgument(f"{name!r} is reserved for the alias of that name; pick another preview name")
        v.check_version_number(version)
        async with self._write("create_preview", caller, alias=name, version=version) as conn:
            row = await self._find_model(conn, caller, model, lock=True)
            await self._version_row(conn, row, version)
            current = await self._alias_row(conn, row.id, name)
            if current is not None and not current.is_preview:
                raise AlreadyExists(f"model {row.name!r} already has an alias {name!r}; previews and aliases "
                                    "share one namespace, pick another preview name")
            if current is not None and current.version == version:
                return _alias(current)
            return await self._move(conn, caller, row, name, True, version, current, "preview")

    async def delete_preview(self, caller: Caller, model: str, name: str) -> None:
        v.check_caller(caller)
        if not name:
            raise InvalidArgument("name is required: the preview to delete")
        async with self._write("delete_preview", caller, alias=name) as conn:
            row = await self._find_model(conn, caller, model, lock=True)
            current = await self._alias_row(conn, row.id, name)
            if current is None:
                raise NotFound(f"model {row.name!r} has no preview {name!r}")
            if not current.is_preview:
                raise FailedPrecondition(f"{name!r} is an alias of model {row.name!r}, not a preview: aliases are "
                                         "moved with Promote and Rollback, not deleted")
            await conn.execute(self.t.aliases.delete().where(
                self.t.aliases.c.model_id == row.id, self.t.aliases.c.name == name))
            await self._history(conn, caller, row.id, name, 0, current.version, "delete")
            await self._emit(conn, caller, row, name, True, 0, current.version, "delete")

    async def list_aliases(self, caller: Caller, model: str) -> list[Alias]:
        """Aliases and previews of the model, by name."""
        v.check_caller(caller)
        a = self.t.aliases
        async with self.db.engine.connect() as conn:
            row = await self._find_model(conn, caller, model)
            rows = (await conn.execute(sa.select(a).where(a.c.model_id == row.id).order_by(a.c.name))).all()
        return [_alias(r) for r in rows]

    async def alias_history(self, caller: Caller, model: str, alias: str = "", *, page_size: int = 0,
                            page_token: str = "") -> Page[AliasChange]:
        """Changes newest first; `alias` empty = every alias and preview of the model."""
        v.check_caller(caller)
        size = v.page_size(page_size)
        if alias:
            v.check_alias_name(alias)
        h = self.t.alias_history
        async with self.db.engine.connect() as conn:
            row = await self._find_model(conn, caller, model)
            scope = f"{caller.tenant_id}/{row.id}/{alias}"
            after = v.decode_page_token(page_token, "alias_history", scope)
            query = sa.select(h).where(h.c.model_id == row.id).order_by(h.c.seq.desc()).limit(size + 1)
            if alias:
                query = query.where(h.c.alias == alias)
            if after is not None:
                query = query.where(h.c.seq < int(after))
            rows = (await conn.execute(query)).all()
        more = len(rows) > size
        rows = rows[:size]
        items = [AliasChange(r.alias, r.version, r.previous_version, r.action, r.at, r.actor) for r in rows]
        return Page(items, v.encode_page_token("alias_history", scope, rows[-1].seq) if more else "")

    # == references =======================================================================
    async def resolve(self, caller: Caller, reference: str) -> Resolution:
        """`name` = `name@production`; `name@3` = version 3; `name@<alias|preview>`; `default`
        = the model tagged 'default', else the tenant's only model (see README)."""
        v.check_caller(caller)
        ref = v.parse_reference(reference)
        async with self.db.engine.connect() as conn:
            if ref.model == v.DEFAULT_REFERENCE:
                row = await self._default_model(conn, caller)
            else:
                row = await self._find_model(conn, caller, ref.model)
            model = await self._model(conn, row)
            if ref.version:
                return Resolution(model, _version(await self._version_row(conn, row, ref.version)), "", False)
            alias = await self._alias_row(conn, row.id, ref.alias)
            if alias is None:
                if ref.alias == PRODUCTION:
                    hint = (f"promote one with Promote(model={row.name!r}, version=N)" if row.latest_version
                            else "it has no versions yet: create one with CreateVersion, then Promote it")
                    raise FailedPrecondition(f"model {row.name!r} has no production version yet: {hint}")
                names = (await conn.execute(sa.select(self.t.aliases.c.name).where(
                    self.t.aliases.c.model_id == row.id).order_by(self.t.aliases.c.name))).scalars().all()
                have = f"it has: {', '.join(names)}" if names else "it has none yet"
                raise NotFound(f"model {row.name!r} has no alias or preview {ref.alias!r} ({have})")
            version = _version(await self._version_row(conn, row, alias.version))
            return Resolution(model, version, alias.name, alias.is_preview)

    async def _default_model(self, conn: AsyncConnection, caller: Caller) -> Row[Any]:
        m, tags = self.t.models, self.t.model_tags
        tagged = (await conn.execute(sa.select(m).where(
            m.c.tenant_id == caller.tenant_id,
            m.c.id.in_(sa.select(tags.c.model_id).where(tags.c.tenant_id == caller.tenant_id,
                                                        tags.c.tag == v.DEFAULT_TAG)),
        ).order_by(m.c.name).limit(5))).all()
        if len(tagged) == 1:
            return tagged[0]
        if tagged:
            raise FailedPrecondition(f"several models are tagged 'default' ({', '.join(r.name for r in tagged)}): "
                                     "keep the tag on one model")
        models = (await conn.execute(sa.select(m).where(m.c.tenant_id == caller.tenant_id).limit(2))).all()
        if len(models) == 1:
            return models[0]
        if not models:
            raise NotFound("no default model: this tenant has no models yet; create one with CreateModel")
        raise NotFound("no default model: this tenant has several models and none is tagged 'default'; tag one "
                       "'default' or name the model in the reference")

    # == internals ========================================================================
    @asynccontextmanager
    async def _write(self, op: str, caller: Caller, **attrs: Any) -> AsyncIterator[AsyncConnection]:
        """One write transaction in a span (so outbox rows carry its trace context); wakes the
        relay after commit."""
        span_attrs = {"dreamforge.tenant_id": caller.tenant_id, **{f"dreamforge.{k}": x for k, x in attrs.items()}}
        with _tracer.start_as_current_span(f"registry.{op}", attributes=span_attrs):
            async with self.db.transaction() as conn:
                yield conn
            self.outbox.notify()

    def _model_where(self, caller: Caller, ref: str) -> sa.ColumnElement[bool]:
        m = self.t.models
        if not ref:
            raise InvalidArgument("model is required: pass the model's id (mdl_...) or its name")
        column = m.c.id if ref.startswith(v.MODEL_ID_PREFIX) else m.c.name
        return sa.and_(m.c.tenant_id == caller.tenant_id, column == ref)

    async def _find_model(self, conn: AsyncConnection, caller: Caller, ref: str, *, lock: bool = False) -> Row[Any]:
        m = self.t.models
        where = self._model_where(caller, ref)
        if lock and self.db.dialect == "sqlite":
            # SQLite has no row locks and reads before the first write see no transaction:
            # a no-op UPDATE first takes the database write lock, then every read is current.
            await conn.execute(m.update().where(where).values(latest_version=m.c.latest_version))
        query = sa.select(m).where(where)
        row = (await conn.execute(query.with_for_update() if lock else query)).first()
        if row is None:
            raise NotFound(f"model {ref!r} not found (ListModels shows this tenant's models)")
        return row

    async def _version_row(self, conn: AsyncConnection, model: Row[Any], version: int) -> Row[Any]:
        vt = self.t.versions
        row = (await conn.execute(sa.select(vt).where(vt.c.model_id == model.id, vt.c.version == version))).first()
        if row is None:
            raise NotFound(f"model {model.name!r} has no version {version}: it has {_range(model.latest_version)}")
        return row

    async def _alias_row(self, conn: AsyncConnection, model_id: str, name: str) -> Row[Any] | None:
        a = self.t.aliases
        return (await conn.execute(sa.select(a).where(a.c.model_id == model_id, a.c.name == name))).first()

    async def _tags(self, conn: AsyncConnection, model_ids: list[str]) -> dict[str, tuple[str, ...]]:
        if not model_ids:
            return {}
        tg = self.t.model_tags
        out: dict[str, list[str]] = {}
        for model_id, tag in (await conn.execute(sa.select(tg.c.model_id, tg.c.tag).where(
                tg.c.model_id.in_(model_ids)).order_by(tg.c.tag))).all():
            out.setdefault(model_id, []).append(tag)
        return {k: tuple(x) for k, x in out.items()}

    async def _model(self, conn: AsyncConnection, row: Row[Any]) -> Model:
        return _model(row, (await self._tags(conn, [row.id])).get(row.id, ()))

    async def _stack(self, conn: AsyncConnection, model_id: str, alias: str) -> list[int]:
        """Replay the alias's history into its rollback stack (top = current version)."""
        h = self.t.alias_history
        stack: list[int] = []
        for action, version in (await conn.execute(sa.select(h.c.action, h.c.version).where(
                h.c.model_id == model_id, h.c.alias == alias).order_by(h.c.seq))).all():
            if action == "promote":
                stack.append(version)
            elif action == "rollback":
                if version in stack:  # pop down to the nearest occurrence
                    del stack[len(stack) - stack[::-1].index(version):]
                else:
                    stack.append(version)
            elif action == "delete":  # a deleted preview of the same name: a fresh start
                stack = []
        return stack

    async def _move(self, conn: AsyncConnection, caller: Caller, model: Row[Any], alias: str, is_preview: bool,
                    version: int, current: Row[Any] | None, action: str) -> Alias:
        """Point the alias at `version`, append history, queue the event: all in `conn`'s transaction."""
        a = self.t.aliases
        now = utcnow()
        values = {"version": version, "is_preview": is_preview, "updated_at": now, "updated_by": caller.key_id}
        if current is None:
            await conn.execute(a.insert().values(model_id=model.id, name=alias, **values))
        else:
            await conn.execute(a.update().where(a.c.model_id == model.id, a.c.name == alias).values(**values))
        previous = current.version if current is not None else 0
        await self._history(conn, caller, model.id, alias, version, previous, action, now)
        await self._emit(conn, caller, model, alias, is_preview, version, previous, action)
        return Alias(model.id, alias, version, is_preview, now, caller.key_id)

    async def _history(self, conn: AsyncConnection, caller: Caller, model_id: str, alias: str, version: int,
                       previous: int, action: str, at: datetime | None = None) -> None:
        await conn.execute(self.t.alias_history.insert().values(
            model_id=model_id, alias=alias, version=version, previous_version=previous, action=action,
            at=at or utcnow(), actor=caller.key_id))

    async def _emit(self, conn: AsyncConnection, caller: Caller, model: Row[Any], alias: str, is_preview: bool,
                    version: int, previous: int, action: str) -> None:
        sha = ""
        if version:
            sha = (await self._version_row(conn, model, version)).artifact_sha256
        await self.outbox.add(conn, MODEL_UPDATED, events_pb2.ModelUpdated(
            meta=new_meta(caller.tenant_id, PRODUCER), model_id=model.id, model_name=model.name, alias=alias,
            is_preview=is_preview, version=version, previous_version=previous, action=action,
            artifact_sha256=sha, actor=caller.key_id))

    async def _claim_key(self, conn: AsyncConnection, caller: Caller, key: str, operation: str,
                         fp: str) -> str | None:
        """None: the key is new and now ours (settle it before commit). Otherwise the result
        recorded for the earlier identical request; a different request is ALREADY_EXISTS."""
        k = self.t.idempotency
        fresh = await self.db.insert_ignore(conn, k, {
            "tenant_id": caller.tenant_id, "key": key, "operation": operation, "fingerprint": fp,
            "result": "", "created_at": utcnow()})
        if fresh:
            return None
        row = (await conn.execute(sa.select(k).where(k.c.tenant_id == caller.tenant_id, k.c.key == key))).one()
        if row.operation != operation or row.fingerprint != fp:
            raise AlreadyExists(f"idempotency_key {key!r} was already used for a different {row.operation} "
                                "request: retry with exactly the same parameters, or use a new key")
        return str(row.result)

    async def _settle_key(self, conn: AsyncConnection, caller: Caller, key: str, result: str) -> None:
        k = self.t.idempotency
        await conn.execute(k.update().where(k.c.tenant_id == caller.tenant_id, k.c.key == key).values(result=result))


def _name_taken(name: str) -> AlreadyExists:
    return AlreadyExists(f"a model named {name!r} already exists in this tenant: pick another name, or use "
                         "GetModel to fetch it")


def _range(latest: int) -> str:
    return "no versions yet" if latest == 0 else ("only version 1" if latest == 1 else f"versions 1..{latest}")


def _model(row: Row[Any], tags: tuple[str, ...]) -> Model:
    return Model(row.id, row.tenant_id, row.name, row.base_checkpoint, row.parameter_count, row.memory_bytes,
                 tags, row.description, row.created_at, row.created_by, row.latest_version)


def _version(row: Row[Any]) -> Version:
    return Version(row.model_id, row.version, row.parent_version, row.artifact_sha256, row.artifact_bytes,
                   row.training_config_json, row.reward_function_json, json.loads(row.eval_metrics_json),
                   row.notes, row.created_at, row.created_by)


def _alias(row: Row[Any]) -> Alias:
    return Alias(row.model_id, row.name, row.version, row.is_preview, row.updated_at, row.updated_by)
