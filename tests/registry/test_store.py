"""RegistryStore's domain rules, on SQLite and on PostgreSQL (`database_url` runs each test on
both): numbering under concurrency, idempotency keys, content addressing, the alias
promote/rollback stack, previews, references, diffs, pagination, tenant isolation, and
the outbox row every alias change writes in its own transaction."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dreamforge.db import Database
from dreamforge.grpcio import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from dreamforge.v1 import events_pb2
from services.registry.artifacts import LocalArtifactStore
from services.registry.records import Caller
from services.registry.store import DataLoss, RegistryStore

A = Caller("tenant-a", "key-a")
B = Caller("tenant-b", "key-b")


@pytest.fixture
async def store(database_url: str, tmp_path: Path) -> AsyncIterator[RegistryStore]:
    db = Database(database_url, "registry")
    s = RegistryStore(db, LocalArtifactStore(tmp_path / "artifacts"), max_artifact_bytes=1024)
    await s.migrate()
    yield s
    await db.close()


async def events(store: RegistryStore) -> list[events_pb2.ModelUpdated]:
    t = store.outbox.table
    async with store.db.engine.connect() as conn:
        payloads = (await conn.execute(sa.select(t.c.payload).order_by(t.c.seq))).scalars().all()
    return [events_pb2.ModelUpdated.FromString(p) for p in payloads]


async def model_with_versions(store: RegistryStore, n: int, name: str = "cap", caller: Caller = A) -> str:
    model = await store.create_model(caller, name)
    for i in range(n):
        await store.create_version(caller, name, artifact=f"weights-{i}".encode())
    return model.id


# -- schema ----------------------------------------------------------------------------------
async def test_migrations_build_the_schema_the_tables_describe(store: RegistryStore) -> None:
    def columns(sync_conn: sa.Connection) -> dict[str, set[str]]:
        inspector = sa.inspect(sync_conn)
        return {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}

    async with store.db.engine.connect() as conn:
        actual = await conn.run_sync(columns)
    for table in [store.t.models, store.t.model_tags, store.t.versions, store.t.aliases, store.t.alias_history,
                  store.t.idempotency, store.outbox.table]:
        assert actual[table.name] == {c.name for c in table.columns}, table.name
    assert await store.migrate() == []  # a restart applies nothing


# -- models ----------------------------------------------------------------------------------
async def test_create_and_get_model_by_id_or_name(store: RegistryStore) -> None:
    m = await store.create_model(A, "moondream-caption", base_checkpoint="/w/base", parameter_count=1_860_000_000,
                                 memory_bytes=4 << 30, tags=["vision", "default", "vision"], description="d")
    assert m.id.startswith("mdl_") and m.tenant_id == A.tenant_id and m.created_by == "key-a"
    assert m.tags == ("default", "vision") and m.latest_version == 0 and m.created_at.tzinfo is not None
    assert await store.get_model(A, m.id) == m
    assert await store.get_model(A, "moondream-caption") == m
    with pytest.raises(AlreadyExists, match="already exists"):
        await store.create_model(A, "moondream-caption")


@pytest.mark.parametrize(("name", "message"), [
    ("Caps", "a-z0-9"), ("", "1-63 characters"), ("-x", "starting with"), ("a" * 64, "1-63"),
    ("mdl_x", "reserved for model ids"), ("default", "reserved"), ("a b", "a-z0-9"),
])
async def test_model_name_validation_says_what_to_fix(store: RegistryStore, name: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        await store.create_model(A, name)


async def test_input_validation_messages(store: RegistryStore) -> None:
    with pytest.raises(InvalidArgument, match="tenant_id is required"):
        await store.create_model(Caller(""), "m")
    with pytest.raises(InvalidArgument, match="tag 'Bad'"):
        await store.create_model(A, "m", tags=["Bad"])
    with pytest.raises(InvalidArgument, match="parameter_count must be >= 0"):
        await store.create_model(A, "m", parameter_count=-1)
    await store.create_model(A, "m")
    with pytest.raises(InvalidArgument, match="training_config_json is not valid JSON"):
        await store.create_version(A, "m", training_config_json="{lr: 1}")
    with pytest.raises(InvalidArgument, match=r"reward_function_json must be a JSON object .* list"):
        await store.create_version(A, "m", reward_function_json="[1, 2]")
    with pytest.raises(InvalidArgument, match=r"eval_metrics.*finite"):
        await store.create_version(A, "m", eval_metrics={"iou": float("nan")})
    with pytest.raises(InvalidArgument, match="limit is 1024"):
        await store.create_version(A, "m", artifact=b"x" * 1025)
    with pytest.raises(InvalidArgument, match="version must be a version number >= 1"):
        await store.get_version(A, "m", 0)
    with pytest.raises(InvalidArgument, match="model is required"):
        await store.get_model(A, "")
    assert (await store.get_model(A, "m")).latest_version == 0  # nothing was written


async def test_create_model_idempotency_key(store: RegistryStore) -> None:
    first = await store.create_model(A, "m", tags=["x"], idempotency_key="k1")
    again = await store.create_model(A, "m", tags=["x"], idempotency_key="k1")
    assert again == first
    with pytest.raises(AlreadyExists, match="idempotency_key 'k1' was already used for a different CreateModel"):
        await store.create_model(A, "other", idempotency_key="k1")
    other_tenant = await store.create_model(B, "m", tags=["x"], idempotency_key="k1")  # keys are per tenant
    assert other_tenant.id != first.id
    assert len((await store.list_models(A)).items) == 1
    # concurrent retries of one request create one model
    results = await asyncio.gather(*[store.create_model(A, "n", idempotency_key="k2") for _ in range(5)])
    assert len({r.id for r in results}) == 1
    await store.delete_model(A, "m")
    with pytest.raises(FailedPrecondition, match="has since been deleted"):
        await store.create_model(A, "m", tags=["x"], idempotency_key="k1")


async def test_delete_model_removes_versions_aliases_and_announces_each_alias(store: RegistryStore) -> None:
    model_id = await model_with_versions(store, 2)
    await store.promote(A, "cap", 1)
    await store.create_preview(A, "cap", 2, "try-2")
    await store.delete_model(A, "cap")
    with pytest.raises(NotFound):
        await store.get_model(A, model_id)
    with pytest.raises(NotFound):
        await store.resolve(A, "cap@try-2")
    removed = [(e.alias, e.action, e.version, e.previous_version, e.is_preview) for e in (await events(store))[-2:]]
    assert removed == [("production", "delete", 0, 1, False), ("try-2", "delete", 0, 2, True)]
    async with store.db.engine.connect() as conn:
        for table in (store.t.versions, store.t.aliases, store.t.alias_history, store.t.model_tags):
            assert (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one() == 0
    recreated = await store.create_model(A, "cap")  # the name is free again
    assert recreated.id != model_id and recreated.latest_version == 0


# -- versions --------------------------------------------------------------------------------
async def test_versions_are_numbered_and_immutable_records(store: RegistryStore) -> None:
    await store.create_model(A, "m")
    v1 = await store.create_version(A, "m", training_config_json='{"lr": 0.001}', eval_metrics={"iou": 0.5},
                                    notes="first")
    v2 = await store.create_version(A, "m", parent_version=1, artifact=b"adapter")
    assert (v1.version, v2.version, v2.parent_version) == (1, 2, 1)
    assert v1.artifact_sha256 == "" and v1.artifact_bytes == 0 and v1.created_by == "key-a"
    assert v1.eval_metrics == {"iou": 0.5} and json.loads(v1.training_config_json) == {"lr": 0.001}
    assert (await store.get_model(A, "m")).latest_version == 2
    assert await store.get_version(A, "m", 1) == v1
    with pytest.raises(NotFound, match=r"parent_version 5 does not exist: model 'm' has versions 1..2"):
        await store.create_version(A, "m", parent_version=5)
    with pytest.raises(NotFound, match="has no version 9"):
        await store.get_version(A, "m", 9)


async def test_concurrent_creates_number_versions_without_gaps(store: RegistryStore) -> None:
    await store.create_model(A, "m")
    created = await asyncio.gather(*[store.create_version(A, "m", notes=str(i)) for i in range(12)])
    assert sorted(v.version for v in created) == list(range(1, 13))
    assert (await store.get_model(A, "m")).latest_version == 12
    page = await store.list_versions(A, "m", page_size=200)
    assert [v.version for v in page.items] == list(range(1, 13))


async def test_create_version_idempotency_key(store: RegistryStore) -> None:
    await store.create_model(A, "m")
    await store.create_model(A, "n")
    retries = await asyncio.gather(*[
        store.create_version(A, "m", artifact=b"w", eval_metrics={"a": 1.0}, idempotency_key="job-1")
        for _ in range(4)])
    assert {r.version for r in retries} == {1}
    assert (await store.get_model(A, "m")).latest_version == 1
    with pytest.raises(AlreadyExists, match="already used for a different CreateVersion request"):
        await store.create_version(A, "m", artifact=b"other", idempotency_key="job-1")
    with pytest.raises(AlreadyExists, match="different CreateVersion"):  # same key on another model
        await store.create_version(A, "n", artifact=b"w", eval_metrics={"a": 1.0}, idempotency_key="job-1")
    with pytest.raises(AlreadyExists, match="different CreateVersion"):  # a CreateModel key is not reusable
        await store.create_model(A, "o", idempotency_key="job-1")
    assert (await store.create_version(A, "m", artifact=b"w", idempotency_key="job-2")).version == 2


async def test_artifacts_are_content_addressed(store: RegistryStore, tmp_path: Path) -> None:
    await store.create_model(A, "m")
    v1 = await store.create_version(A, "m", artifact=b"same bytes")
    v2 = await store.create_version(A, "m", artifact=b"same bytes")
    assert v1.artifact_sha256 == v2.artifact_sha256 and v1.artifact_bytes == 10
    files = [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]
    assert [p.name for p in files] == [v1.artifact_sha256]
    version, chunks = await store.open_artifact(A, "m", 2, chunk_size=3)
    assert b"".join([c async for c in chunks]) == b"same bytes" and version == v2
    await store.create_version(A, "m")
    with pytest.raises(NotFound, match="version 3 of model 'm' has no artifact"):
        await store.open_artifact(A, "m", 3)
    files[0].unlink()
    with pytest.raises(DataLoss, match="is missing from the artifact store"):
        await store.open_artifact(A, "m", 1)


# -- aliases ---------------------------------------------------------------------------------
async def test_promote_and_rollback_walk_the_history_like_a_stack(store: RegistryStore) -> None:
    await model_with_versions(store, 4)
    assert (await store.promote(A, "cap", 1)).version == 1
    assert (await store.promote(A, "cap", 1)).version == 1  # no-op: no history, no event
    await store.promote(A, "cap", 2)
    await store.promote(A, "cap", 3)
    assert len(await events(store)) == 3
    rolled = await store.rollback(A, "cap")
    assert (rolled.name, rolled.version, rolled.updated_by) == ("production", 2, "key-a")
    assert (await store.rollback(A, "cap")).version == 1  # not back to 3: no oscillation
    with pytest.raises(FailedPrecondition, match="nothing to roll back to"):
        await store.rollback(A, "cap")
    assert (await store.resolve(A, "cap")).version.version == 1

    history = (await store.alias_history(A, "cap", "production")).items
    assert [(c.action, c.version, c.previous_version, c.actor) for c in history] == [
        ("rollback", 1, 2, "key-a"), ("rollback", 2, 3, "key-a"),
        ("promote", 3, 2, "key-a"), ("promote", 2, 1, "key-a"), ("promote", 1, 0, "key-a")]
    sent = await events(store)
    assert [(e.action, e.version, e.previous_version) for e in sent] == [
        ("promote", 1, 0), ("promote", 2, 1), ("promote", 3, 2), ("rollback", 2, 3), ("rollback", 1, 2)]
    assert all(e.meta.tenant_id == "tenant-a" and e.meta.producer == "registry" and e.actor == "key-a"
               and e.model_name == "cap" and len(e.artifact_sha256) == 64 for e in sent)
    assert len({e.meta.event_id for e in sent}) == 5


async def test_rollback_to_a_named_version_and_edge_cases(store: RegistryStore) -> None:
    await model_with_versions(store, 4)
    with pytest.raises(FailedPrecondition, match=r"has no alias 'production'.*promote a version first"):
        await store.rollback(A, "cap")
    for version in (1, 2, 3):
        await store.promote(A, "cap", version)
    assert (await store.rollback(A, "cap", to_version=1)).version == 1  # pops 3 and 2
    with pytest.raises(FailedPrecondition, match="nothing to roll back to"):
        await store.rollback(A, "cap")
    assert (await store.rollback(A, "cap", to_version=4)).version == 4  # never deployed: pushed
    assert (await store.rollback(A, "cap")).version == 1
    assert (await store.rollback(A, "cap", to_version=1)).version == 1  # already there: no-op
    with pytest.raises(NotFound, match="has no version 9"):
        await store.rollback(A, "cap", to_version=9)
    with pytest.raises(NotFound, match="has no version 7"):
        await store.promote(A, "cap", 7)
    # other aliases have their own stacks
    await store.promote(A, "cap", 2, "staging")
    await store.promote(A, "cap", 3, "staging")
    assert (await store.rollback(A, "cap", "staging")).version == 2
    assert (await store.resolve(A, "cap@staging")).version.version == 2
    assert (await store.resolve(A, "cap@production")).version.version == 1
    with pytest.raises(InvalidArgument, match="all-digit"):
        await store.promote(A, "cap", 1, "42")
    failed_before = len(await events(store))
    with pytest.raises(NotFound):
        await store.promote(A, "cap", 99, "canary")
    assert len(await events(store)) == failed_before  # a refused change writes no event


async def test_previews(store: RegistryStore) -> None:
    await model_with_versions(store, 3)
    await store.promote(A, "cap", 1)
    preview = await store.create_preview(A, "cap", 2, "try-lr-high")
    assert (preview.is_preview, preview.version) == (True, 2)
    assert (await store.create_preview(A, "cap", 2, "try-lr-high")).version == 2  # no-op
    found = await store.resolve(A, "cap@try-lr-high")
    assert (found.alias, found.is_preview, found.version.version) == ("try-lr-high", True, 2)
    assert (await store.create_preview(A, "cap", 3, "try-lr-high")).version == 3  # moved
    await store.promote(A, "cap", 1, "canary")
    with pytest.raises(AlreadyExists, match="share one namespace"):
        await store.create_preview(A, "cap", 2, "canary")
    with pytest.raises(InvalidArgument, match="reserved"):
        await store.create_preview(A, "cap", 2, "staging")
    with pytest.raises(FailedPrecondition, match="is a preview"):
        await store.promote(A, "cap", 1, "try-lr-high")
    with pytest.raises(FailedPrecondition, match="previews are not rolled back"):
        await store.rollback(A, "cap", "try-lr-high")
    with pytest.raises(FailedPrecondition, match=r"is an alias .* not a preview"):
        await store.delete_preview(A, "cap", "production")
    aliases = await store.list_aliases(A, "cap")
    assert [(a.name, a.version, a.is_preview) for a in aliases] == [
        ("canary", 1, False), ("production", 1, False), ("try-lr-high", 3, True)]
    await store.delete_preview(A, "cap", "try-lr-high")
    with pytest.raises(NotFound, match="has no preview 'try-lr-high'"):
        await store.delete_preview(A, "cap", "try-lr-high")
    with pytest.raises(NotFound, match="no alias or preview 'try-lr-high' \\(it has: canary, production\\)"):
        await store.resolve(A, "cap@try-lr-high")
    preview_events = [(e.alias, e.action, e.version, e.previous_version, e.is_preview)
                      for e in await events(store) if e.is_preview]
    assert preview_events == [("try-lr-high", "preview", 2, 0, True), ("try-lr-high", "preview", 3, 2, True),
                              ("try-lr-high", "delete", 0, 3, True)]
    # a deleted preview's name may become an alias with a fresh history
    await store.promote(A, "cap", 1, "try-lr-high")
    with pytest.raises(FailedPrecondition, match="nothing to roll back to"):
        await store.rollback(A, "cap", "try-lr-high")


# -- references ------------------------------------------------------------------------------
async def test_resolve_references(store: RegistryStore) -> None:
    model_id = await model_with_versions(store, 3)
    with pytest.raises(FailedPrecondition, match=r"no production version yet: promote one with Promote"):
        await store.resolve(A, "cap")
    await store.promote(A, "cap", 2)
    await store.promote(A, "cap", 3, "staging")
    plain = await store.resolve(A, "cap")
    assert (plain.model.id, plain.version.version, plain.alias, plain.is_preview) == (model_id, 2, "production", False)
    assert (await store.resolve(A, "cap@production")).version.version == 2
    assert (await store.resolve(A, f"{model_id}@staging")).version.version == 3
    exact = await store.resolve(A, "cap@1")
    assert (exact.version.version, exact.alias) == (1, "")
    with pytest.raises(NotFound, match="has no version 4"):
        await store.resolve(A, "cap@4")
    with pytest.raises(NotFound, match="no alias or preview 'canary'"):
        await store.resolve(A, "cap@canary")
    for bad in ("", "@3", "cap@", "cap@1@2", "cap@Prod"):
        with pytest.raises(InvalidArgument):
            await store.resolve(A, bad)
    await store.create_model(A, "empty")
    with pytest.raises(FailedPrecondition, match="no versions yet: create one with CreateVersion"):
        await store.resolve(A, "empty")


async def test_resolve_default(store: RegistryStore) -> None:
    with pytest.raises(NotFound, match="no models yet"):
        await store.resolve(A, "default")
    await model_with_versions(store, 1, "only")
    await store.promote(A, "only", 1)
    assert (await store.resolve(A, "default")).model.name == "only"  # the tenant's only model
    await model_with_versions(store, 2, "second")
    with pytest.raises(NotFound, match="none is tagged 'default'"):
        await store.resolve(A, "default")
    await store.create_model(A, "chosen", tags=["default"])
    await store.create_version(A, "chosen")
    await store.promote(A, "chosen", 1)
    assert (await store.resolve(A, "default")).model.name == "chosen"
    assert (await store.resolve(A, "default@1")).model.name == "chosen"
    await store.create_model(A, "rival", tags=["default"])
    with pytest.raises(FailedPrecondition, match=r"several models are tagged 'default' \(chosen, rival\)"):
        await store.resolve(A, "default")
    with pytest.raises(NotFound, match="no models yet"):  # tenant B sees none of A's models
        await store.resolve(B, "default")


# -- diff ------------------------------------------------------------------------------------
async def test_diff_versions(store: RegistryStore) -> None:
    await store.create_model(A, "m")
    await store.create_version(
        A, "m", artifact=b"one", notes="base",
        training_config_json=json.dumps({"lr": 0.001, "optim": {"name": "adamw", "betas": [0.9, 0.99]}, "x": 1}),
        reward_function_json=json.dumps({"terms": {"iou": 1.0}}), eval_metrics={"iou": 0.5, "gone": 1.0})
    await store.create_version(
        A, "m", parent_version=1, artifact=b"two!", notes="tuned",
        training_config_json=json.dumps({"lr": 0.0005, "optim": {"name": "adamw", "betas": [0.9, 0.999]},
                                         "new": "yes"}),
        reward_function_json=json.dumps({"terms": {"iou": 1.0, "len": -0.1}}), eval_metrics={"iou": 0.625})
    diff = await store.diff_versions(A, "m", 1, 2)
    assert (diff.before.version, diff.after.version) == (1, 2)
    changes = {c.field: (c.before, c.after) for c in diff.changes}
    v1, v2 = diff.before, diff.after
    assert changes == {
        "parent_version": ("0", "1"),
        "artifact_sha256": (v1.artifact_sha256, v2.artifact_sha256),
        "artifact_bytes": ("3", "4"),
        "training_config.lr": ("0.001", "0.0005"),
        "training_config.optim.betas": ("[0.9, 0.99]", "[0.9, 0.999]"),
        "training_config.x": ("1", ""),
        "training_config.new": ("", '"yes"'),
        "reward_function.terms.len": ("", "-0.1"),
        "eval_metrics.iou": ("0.5", "0.625"),
        "eval_metrics.gone": ("1.0", ""),
        "notes": ("base", "tuned"),
    }
    assert [c.field for c in diff.changes][:3] == ["parent_version", "artifact_sha256", "artifact_bytes"]
    assert diff.changes[-1].field == "notes"
    assert (await store.diff_versions(A, "m", 2, 2)).changes == []
    with pytest.raises(NotFound, match="has no version 3"):
        await store.diff_versions(A, "m", 1, 3)


# -- pagination ------------------------------------------------------------------------------
async def test_list_models_pages_through_seven_models(store: RegistryStore) -> None:
    names = [f"model-{i}" for i in range(7)]
    for i, name in enumerate(reversed(names)):
        await store.create_model(A, name, tags=["even"] if i % 2 == 0 else [])
    seen, token, pages = [], "", 0
    while True:
        page = await store.list_models(A, page_size=3, page_token=token)
        seen += [m.name for m in page.items]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert (seen, pages) == (names, 3)
    even = await store.list_models(A, tag="even", page_size=2)
    assert [m.name for m in even.items] == ["model-0", "model-2"] and even.next_page_token
    rest = await store.list_models(A, tag="even", page_size=2, page_token=even.next_page_token)
    assert [m.name for m in rest.items] == ["model-4", "model-6"] and all("even" in m.tags for m in rest.items)
    assert len((await store.list_models(A)).items) == 7  # page_size 0 = 50
    for size in (-1, 201):
        with pytest.raises(InvalidArgument, match="page_size must be between 1 and 200"):
            await store.list_models(A, page_size=size)
    with pytest.raises(InvalidArgument, match="page_token is not a token this API returned"):
        await store.list_models(A, page_token="garbage!")
    with pytest.raises(InvalidArgument, match="different listing"):
        await store.list_models(A, page_token=even.next_page_token)  # token of the tag=even listing
    with pytest.raises(InvalidArgument, match="different listing"):
        await store.list_models(B, tag="even", page_token=even.next_page_token)


async def test_versions_and_history_paginate(store: RegistryStore) -> None:
    await model_with_versions(store, 5)
    first = await store.list_versions(A, "cap", page_size=2)
    second = await store.list_versions(A, "cap", page_size=2, page_token=first.next_page_token)
    third = await store.list_versions(A, "cap", page_size=2, page_token=second.next_page_token)
    assert [[v.version for v in p.items] for p in (first, second, third)] == [[1, 2], [3, 4], [5]]
    assert third.next_page_token == ""
    for version in (1, 2, 3, 4, 5):
        await store.promote(A, "cap", version)
    await store.promote(A, "cap", 1, "staging")
    page = await store.alias_history(A, "cap", page_size=4)
    assert [(c.alias, c.version) for c in page.items] == [("staging", 1), ("production", 5), ("production", 4),
                                                         ("production", 3)]
    rest = await store.alias_history(A, "cap", page_size=4, page_token=page.next_page_token)
    assert [c.version for c in rest.items] == [2, 1] and rest.next_page_token == ""
    with pytest.raises(InvalidArgument, match="different listing"):
        await store.alias_history(A, "cap", "production", page_token=page.next_page_token)


# -- tenants ---------------------------------------------------------------------------------
async def test_tenants_never_see_each_other(store: RegistryStore) -> None:
    model_id = await model_with_versions(store, 2, "private")
    await store.promote(A, "private", 1)
    for ref in (model_id, "private"):
        with pytest.raises(NotFound, match="not found"):
            await store.get_model(B, ref)
        with pytest.raises(NotFound):
            await store.get_version(B, ref, 1)
        with pytest.raises(NotFound):
            await store.promote(B, ref, 2)
        with pytest.raises(NotFound):
            await store.resolve(B, f"{ref}@1")
        with pytest.raises(NotFound):
            await store.delete_model(B, ref)
        with pytest.raises(NotFound):
            await store.create_version(B, ref, artifact=b"x")
    assert (await store.list_models(B)).items == []
    assert (await store.list_models(B, tag="x")).items == []
    mine = await store.create_model(B, "private")  # names are per tenant
    assert mine.id != model_id
    assert (await store.resolve(A, "private")).version.version == 1  # A is untouched
