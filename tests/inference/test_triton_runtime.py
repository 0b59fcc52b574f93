"""The triton runtime against a real Triton server (started from the cached pytriton binary).

What the shared runtime tests (test_runtime.py, parametrised with "triton") cannot see: answers
equal to the torch `Skills` and the torch runtime, token counts included; Triton's dynamic batcher
actually merging concurrent requests (its statistics API: execute() calls < requests); adapters
through the backend; the server leaving no process behind; and the launcher's failure modes.

One Triton model serves the module (loading one costs a backend process that imports torch and
transformers); it is the model the shared tests leave warm when they run first.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from dreamforge.grpcio import channel
from dreamforge.images import encode_png
from dreamforge.model.skills import NUM_BEAMS, Skills
from dreamforge.triton_server import TritonUnavailable, ensure_triton_binaries
from dreamforge.v1 import common_pb2, inference_pb2, inference_pb2_grpc
from dreamforge.world import get_sample, readable
from services.inference.main import build as build_inference
from services.inference.runtime.base import SKILLS, AdapterRef, SkillCall, SkillOutput
from services.inference.runtime.prompts import prompt_for
from services.inference.runtime.torch_runtime import TorchRuntime
from services.inference.runtime.triton_backend import BackendEngine, BackendRequest, Reply
from services.inference.runtime.triton_host import ModelSettings, render_config
from services.inference.runtime.triton_runtime import TritonRuntime, create
from services.inference.settings import InferenceSettings
from services.registry.main import build as build_registry
from tests.helpers import platform_settings, running_service
from tests.inference.conftest import TRAINED_MODEL, Adapter, image_of, needs_trained_model

IMAGES = [get_sample("test", i).image for i in range(3)]
TEXTS = {"caption": "short", "query": "how many shapes are there?", "detect": "red circle",
         "point": "Blue Square.", "chat": "what is in the image?"}


def _ref(adapter: Adapter) -> AdapterRef:
    return AdapterRef(adapter.path.name, adapter.path)


def _calls() -> list[SkillCall]:
    """One call per skill; a token limit keeps the random model (which never stops by itself) quick."""
    return [SkillCall(skill, IMAGES[0], TEXTS[skill], max_new_tokens=10) for skill in SKILLS]


@pytest.fixture(scope="module")
async def triton(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TritonRuntime]:
    """The tiny model on Triton, with the service's default settings (so a warm model is reused)."""
    settings = InferenceSettings(home=tmp_path_factory.mktemp("triton-home"), inference_runtime="triton",
                                 default_model=tiny_model_dir)
    runtime = create(settings, tiny_model_dir)
    await runtime.start()
    yield runtime
    await runtime.close()


@pytest.fixture(scope="module")
async def torch_runtime(tiny_model_dir: Path) -> AsyncIterator[TorchRuntime]:
    runtime = TorchRuntime(tiny_model_dir, memory_budget_bytes=512 * 1024 * 1024, max_batch_size=1)
    await runtime.start()
    yield runtime
    await runtime.close()


async def _one_by_one(runtime: TritonRuntime | TorchRuntime, calls: list[SkillCall]) -> list[SkillOutput]:
    return [await runtime.run(call) for call in calls]


async def test_every_skill_answers_like_torch(triton: TritonRuntime, torch_runtime: TorchRuntime,
                                              tiny_model_dir: Path) -> None:
    calls = _calls()
    on_triton = await _one_by_one(triton, calls)
    assert on_triton == await _one_by_one(torch_runtime, calls)  # text, boxes, points and token counts
    skills = Skills.from_pretrained(tiny_model_dir, "cpu")
    for call, out in zip(calls, on_triton, strict=True):
        beams = NUM_BEAMS.get(call.skill, 1)  # chat: greedy
        assert out.text == readable(call.skill, skills.generate([call.image], [prompt_for(call)], 10, beams)[0]), \
            call.skill
    default = SkillCall("point", IMAGES[1], TEXTS["point"])  # the skill's own token limit
    assert (await triton.run(default)).points == skills.point(default.image, default.text)


async def test_concurrent_requests_run_in_fewer_executions(triton: TritonRuntime) -> None:
    call = SkillCall("query", IMAGES[0], TEXTS["query"], max_new_tokens=4)
    alone = await triton.run(call)
    requests_before, executions_before = await _settled_statistics(triton)
    answers = await asyncio.gather(*(triton.run(call) for _ in range(32)))
    assert answers == [alone] * 32
    requests, executions = await _settled_statistics(triton, requests_before + 32)
    assert requests - requests_before == 32
    assert executions - executions_before < 32, "Triton's dynamic batcher did not merge any request"


async def test_mixed_concurrent_calls_are_grouped_by_skill_and_adapter(
        triton: TritonRuntime, tiny_adapters: list[Adapter]) -> None:
    adapter = _ref(tiny_adapters[0])
    calls = [SkillCall(skill, IMAGES[0], TEXTS[skill], adapter=a, max_new_tokens=6) for skill in ("query", "detect")
             for a in (None, adapter)]
    expected = await _one_by_one(triton, calls)
    together = await asyncio.gather(*(triton.run(c) for c in calls * 4))
    assert together == expected * 4


async def test_adapters_load_change_answers_and_match_torch(triton: TritonRuntime, torch_runtime: TorchRuntime,
                                                            tiny_adapters: list[Adapter]) -> None:
    refs = [_ref(a) for a in tiny_adapters[1:]]
    await triton.load_adapter(refs[0])
    assert refs[0].sha256 in {a.sha256 for a in await triton.loaded_adapters()}
    call = SkillCall("query", IMAGES[1], TEXTS["query"])
    base = await triton.run(call)
    adapted = [await triton.run(replace(call, adapter=ref)) for ref in refs]
    assert len({base.text, *(a.text for a in adapted)}) == 3
    assert adapted == [await torch_runtime.run(replace(call, adapter=ref)) for ref in refs]
    loaded = {a.sha256: a.memory_bytes for a in await triton.loaded_adapters()}
    torch_loaded = {a.sha256: a.memory_bytes for a in await torch_runtime.loaded_adapters()}
    assert {sha: loaded[sha] for sha in torch_loaded} == torch_loaded  # same memory accounting
    with pytest.raises(Exception, match="cannot be loaded"):
        await triton.load_adapter(AdapterRef("0" * 64, Path("/nonexistent/adapter")))


async def test_bad_calls_fail_like_torch(triton: TritonRuntime, torch_runtime: TorchRuntime) -> None:
    bad = SkillCall("caption", IMAGES[0], "enormous")
    for runtime in (triton, torch_runtime):
        with pytest.raises(KeyError):
            await runtime.run(bad)
    assert (await triton.run(SkillCall("caption", IMAGES[0], "short"))).text  # the model still answers


def test_backend_engine_answers_every_request_once(tiny_model_dir: Path, tiny_adapters: list[Adapter]) -> None:
    """The backend's batch logic without Triton: errors stay with their request, streams end final."""
    engine = BackendEngine(tiny_model_dir, memory_budget_bytes=1 << 30, device="cpu")
    model = engine.runtime._require_skills().model
    assert engine.runtime._parameters == sum(p.numel() for p in model.parameters()) > 0  # sizes its threads
    png = encode_png(IMAGES[0])
    adapter = tiny_adapters[0]
    requests = [
        BackendRequest("query", png, TEXTS["query"]),
        BackendRequest("query", b"not an image", TEXTS["query"]),
        BackendRequest("paint", png, "x"),
        BackendRequest("load", adapter_sha=adapter.path.name, adapter_path=str(adapter.path)),
        BackendRequest("query", png, TEXTS["query"], adapter.path.name, str(adapter.path)),
        BackendRequest("caption", png, "short", stream=True),
        BackendRequest("query", png, TEXTS["query"], max_new_tokens=3),
    ]
    replies: dict[int, list[Reply]] = {i: [] for i in range(len(requests))}
    engine.handle(requests, lambda i, reply: replies[i].append(reply))
    assert all(sum(r.final or r.error is not None for r in rs) == 1 for rs in replies.values())
    assert "could not be decoded" in str(replies[1][0].error) and "unknown skill" in str(replies[2][0].error)
    assert json.loads(replies[3][0].text)[0][0] == adapter.path.name
    assert replies[4][0].text != replies[0][0].text
    *pieces, final = replies[5]
    assert len(pieces) > 1 and "".join(p.text for p in pieces) == final.text
    assert replies[6][0].output_tokens <= 3
    engine.handle([BackendRequest("reset")], lambda i, reply: replies[0].append(reply))
    assert json.loads(replies[0][-1].text) == [] and engine.runtime._peft is None


def test_rendered_config_batches_unless_max_batch_size_is_one(tmp_path: Path) -> None:
    batched = render_config(ModelSettings(tmp_path, 1024, max_batch_size=32, queue_delay_us=700), "a")
    assert batched.max_batch_size == 32 and batched.dynamic_batching.max_queue_delay_microseconds == 700
    assert list(batched.dynamic_batching.preferred_batch_size)[-1] == 32
    assert batched.parameters["base_dir"].string_value == str(tmp_path)
    assert batched.model_transaction_policy.decoupled
    single = render_config(ModelSettings(tmp_path, 1024, max_batch_size=1, gpu=True), "b")
    assert single.max_batch_size == 1 and not single.HasField("dynamic_batching")
    assert single.instance_group[0].kind == single.instance_group[0].KIND_GPU


def test_binaries_are_cached_and_missing_ones_say_how_to_get_them(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    home = ensure_triton_binaries()
    assert ensure_triton_binaries() == home and (home / "bin" / "tritonserver").is_file()
    monkeypatch.setenv("DREAMFORGE_TRITON_HOME", str(tmp_path))
    with pytest.raises(TritonUnavailable, match="no bin/tritonserver"):
        ensure_triton_binaries()
    monkeypatch.delenv("DREAMFORGE_TRITON_HOME")
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # PyPI unreachable, as offline
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(TritonUnavailable, match=r"could not fetch nvidia-pytriton(.|\n)*DREAMFORGE_TRITON_URL"):
        ensure_triton_binaries(tmp_path / "cache")


@needs_trained_model
async def test_trained_model_answers_like_torch_and_correctly(tmp_path: Path) -> None:
    """The default checkpoint on Triton: the evaluated model's answers, and right ones."""
    from dreamforge.model.evaluate import normalise

    runtime = TritonRuntime(TRAINED_MODEL, memory_budget_bytes=1 << 28, work_dir=tmp_path, keep_warm_s=0)
    skills = Skills.from_pretrained(TRAINED_MODEL, "cpu")
    try:
        right = total = 0
        for index in range(4):
            sample = get_sample("test", index, skills.processor.image_processor.max_image_size["longest_edge"])
            for qa in sample.questions()[:3]:
                answer = (await runtime.run(SkillCall("query", sample.image, qa.question))).text
                assert answer == skills.query(sample.image, qa.question)
                right, total = right + (normalise(answer) == normalise(qa.answer)), total + 1
            name = next(iter(sample.detect_targets()))
            assert (await runtime.run(SkillCall("detect", sample.image, name))).boxes == skills.detect(sample.image,
                                                                                                        name)
            assert (await runtime.run(SkillCall("caption", sample.image, "short"))).text == skills.caption(
                sample.image, "short")
        # Half the checkpoint's own held-out query exact match (models/default/eval.json), as in
        # tests/inference/test_correctness.py: Triton must serve the evaluated model's quality.
        held_out = json.loads((Path(TRAINED_MODEL) / "eval.json").read_text())
        floor = 0.5 * held_out.get("test", held_out)["query_em"]
        assert right / total >= floor, f"{right}/{total} questions answered right (floor {floor:.2f})"
    finally:
        await runtime.close()


async def test_the_inference_service_answers_through_triton(shared_nats_url: str, tiny_model_dir: Path,
                                                            tmp_path: Path, triton: TritonRuntime) -> None:
    """DREAMFORGE_INFERENCE_RUNTIME=triton end to end: gRPC in, Triton behind, same answers, streaming too.
    (Its runtime takes over the module's warm model when the module's one is parked.)"""
    registry_settings = platform_settings(tmp_path / "registry", shared_nats_url)
    async with running_service("registry", build_registry, registry_settings) as registry:
        settings = InferenceSettings(home=tmp_path / "inference", nats_url=shared_nats_url, log_format="text",
                                     registry_addr=f"127.0.0.1:{registry.port}", default_model=tiny_model_dir,
                                     inference_runtime="triton")
        async with running_service("inference", build_inference, settings) as inference, \
                channel(f"127.0.0.1:{inference.port}") as ch:
            stub = inference_pb2_grpc.InferenceServiceStub(ch)  # type: ignore[no-untyped-call]
            caller = common_pb2.Caller(tenant_id="t_triton", key_id="k_test", scopes=["app"])
            query = inference_pb2.QueryRequest(caller=caller, image=image_of(0), question=TEXTS["query"])
            unary = await stub.Query(query)
            chunks = [c async for c in stub.Stream(inference_pb2.StreamRequest(query=query))]
    expected = await triton.run(SkillCall("query", get_sample("test", 0, 96).image, TEXTS["query"]))
    assert (unary.text, unary.input_tokens, unary.output_tokens) == \
        (expected.text, expected.input_tokens, expected.output_tokens)
    assert "".join(c.text for c in chunks[:-1]) == chunks[-1].final.text == unary.text


async def test_server_stops_leaving_no_process(triton: TritonRuntime) -> None:
    """Last in the module: shutting the host down stops the server and every backend stub."""
    assert triton.host is not None and triton.host.server is not None and triton.host.server.process is not None
    pid = triton.host.server.process.pid
    await triton.close()
    await asyncio.to_thread(triton.host.shutdown)
    assert triton.host.server is None
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # neither the server nor a stub of its process group is left


async def _settled_statistics(runtime: TritonRuntime, requests: int = 0) -> tuple[int, int]:
    """Triton counts a request just after its response: wait until `requests` are counted and the
    figures stop moving."""
    stats = await runtime.statistics()
    for _ in range(100):
        await asyncio.sleep(0.1)
        latest = await runtime.statistics()
        if latest == stats and latest[0] >= requests:
            break
        stats = latest
    return stats

