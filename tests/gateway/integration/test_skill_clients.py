"""The official `moondream` and `openai` clients, and DreamForge's SDK, unchanged, against the
gateway (real uvicorn on a free port) backed by the real inference service.

The clients block, so each runs in a worker thread while the event loop serves the platform.
Well-formedness is checked on whatever model is served; correctness (the right colour, count
and box on held-out `dreamforge.world` test images) only when the trained default model is.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import openai
import pytest

from dreamforge.client import DreamForge, DreamForgeError
from dreamforge.grpcio import channel
from dreamforge.images import encode_png, to_data_url
from dreamforge.v1 import gateway_pb2, gateway_pb2_grpc, inference_pb2
from dreamforge.world import get_sample
from tests.gateway.conftest import Account, Stack

MOONDREAM_MISSING = ("the official moondream client is not installed: pip install --no-deps 'moondream==2.6.1' "
                     "(its `kestrel` dependency is local inference only; see pyproject's dev extra)")

NEEDS_TRAINED = "the trained default model is not built (models/default or DREAMFORGE_DEFAULT_MODEL): " \
                "answers are only checked for shape, not correctness"


@pytest.fixture(scope="module")
async def app_key(stack: Stack) -> Account:
    return await stack.account(scopes=("app",))


def unit(value: Any) -> bool:
    return isinstance(value, float | int) and 0.0 <= value <= 1.0


def well_formed_box(box: dict[str, Any]) -> bool:
    return set(box) >= {"x_min", "y_min", "x_max", "y_max"} and all(unit(box[k]) for k in box if k in (
        "x_min", "y_min", "x_max", "y_max")) and box["x_min"] <= box["x_max"] and box["y_min"] <= box["y_max"]


def moondream_session(base_url: str, key: str) -> dict[str, Any]:
    """Everything the moondream client does, as its README shows it (runs in a thread)."""
    import moondream as md

    model = md.vl(endpoint=f"{base_url}/v1", api_key=key)
    image = get_sample("test", 0).image
    out: dict[str, Any] = {
        "caption": model.caption(image)["caption"],
        "short": model.caption(image, length="short")["caption"],
        "caption_stream": list(model.caption(image, stream=True)["caption"]),
        "answer": model.query(image, "what colour is the triangle?")["answer"],
        "answer_stream": list(model.query(image, "what colour is the triangle?", stream=True)["answer"]),
        "objects": model.detect(image, "blue square")["objects"],
        "points": model.point(image, "purple triangle")["points"],
    }
    try:
        model.query(image, "")
    except Exception as exc:  # urllib's HTTPError: the gateway's 400
        out["empty_question_error"] = exc
    return out


async def test_the_moondream_client_works_unchanged(stack: Stack, app_key: Account) -> None:
    pytest.importorskip("moondream", reason=MOONDREAM_MISSING)
    out = await asyncio.to_thread(moondream_session, stack.base_url, app_key.key)
    for key in ("caption", "short", "answer"):
        assert isinstance(out[key], str), (key, out[key])
    for key in ("caption_stream", "answer_stream"):
        assert all(isinstance(piece, str) for piece in out[key]), out[key]
    assert isinstance(out["objects"], list) and all(well_formed_box(b) for b in out["objects"]), out["objects"]
    assert isinstance(out["points"], list), out["points"]
    assert all(set(p) >= {"x", "y"} and unit(p["x"]) and unit(p["y"]) for p in out["points"]), out["points"]
    assert getattr(out["empty_question_error"], "code", None) == 400
    # a streamed answer is the unary one (a query is greedy either way; a streamed caption is decoded greedily
    # and a returned one with beams, dreamforge.model.skills.NUM_BEAMS, so those two may differ)
    assert "".join(out["answer_stream"]) == out["answer"]
    assert "".join(out["caption_stream"]).strip(), out["caption_stream"]


def moondream_settings_session(base_url: str, key: str) -> dict[str, Any]:
    """Moondream's `settings`: max_tokens bounds a caption or answer, max_objects the boxes and points."""
    import moondream as md

    model = md.vl(endpoint=f"{base_url}/v1", api_key=key)
    crowded = get_sample("test", 33).image  # three green squares
    image = get_sample("test", 3).image
    return {
        "caption": model.caption(image)["caption"],
        "caption_3": model.caption(image, settings={"max_tokens": 3})["caption"],
        "stream_3": list(model.caption(image, stream=True, settings={"max_tokens": 3})["caption"]),
        "boxes": model.detect(crowded, "green square")["objects"],
        "boxes_1": model.detect(crowded, "green square", settings={"max_objects": 1})["objects"],
        "points": model.point(crowded, "green square")["points"],
        "points_2": model.point(crowded, "green square", settings={"max_objects": 2})["points"],
    }


async def test_the_moondream_clients_settings_are_honoured(stack: Stack) -> None:
    pytest.importorskip("moondream", reason=MOONDREAM_MISSING)
    account = await stack.account(scopes=("app",))  # its own key: the module's shares one rate limit
    out = await asyncio.to_thread(moondream_settings_session, stack.base_url, account.key)
    async with stack.client(account) as c:
        capped = await c.post("/v1/query", json={"image_url": to_data_url(get_sample("test", 3).image),
                                                 "question": "what shapes are there?", "settings": {"max_tokens": 1}})
        refused = await c.post("/v1/caption", json={"image_url": to_data_url(get_sample("test", 3).image),
                                                    "settings": {"max_tokens": 100_000}})
    assert capped.status_code == 200 and capped.json()["metrics"]["output_tokens"] <= 1, capped.text
    assert refused.status_code == 400 and "max_tokens" in refused.json()["error"]["message"], refused.text
    assert 0 < len(out["caption_3"]) < len(out["caption"]), out
    assert len("".join(out["stream_3"]).split()) <= 3, out["stream_3"]
    assert len(out["boxes_1"]) <= 1 and len(out["points_2"]) <= 2
    if stack.model.trained:  # the model finds the three squares; the settings keep the first ones
        assert len(out["boxes"]) >= 2 and out["boxes_1"] == out["boxes"][:1], out
        assert len(out["points"]) >= 3 and out["points_2"] == out["points"][:2], out


def openai_session(base_url: str, key: str) -> dict[str, Any]:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "what colour is the triangle?"},
        {"type": "image_url", "image_url": {"url": to_data_url(get_sample("test", 0).image)}}]}]
    unary = client.chat.completions.create(model="default", messages=messages, max_tokens=16, temperature=0)
    stream = client.chat.completions.create(model="default", messages=messages, max_tokens=16, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    listed = [m.id for m in client.models.list()]
    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
    except openai.NotFoundError as exc:
        missing: Any = exc
    return {"unary": unary, "chunks": chunks, "missing": missing, "listed": listed}


async def test_the_openai_client_works_unchanged(stack: Stack, app_key: Account) -> None:
    out = await asyncio.to_thread(openai_session, stack.base_url, app_key.key)
    unary = out["unary"]
    assert unary.object == "chat.completion" and unary.model == "default" and unary.id.startswith("chatcmpl-")
    choice = unary.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert unary.usage.prompt_tokens > 0 and unary.usage.total_tokens == (
        unary.usage.prompt_tokens + unary.usage.completion_tokens)
    chunks = out["chunks"]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1 and chunks[0].id != unary.id  # one id per request
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == choice.message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == unary.usage.completion_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == choice.finish_reason
    assert out["missing"].status_code == 404 and "no-such-model" in str(out["missing"])
    assert out["listed"] == ["default"]  # client.models.list(): this tenant has no models of its own yet


def sdk_session(base_url: str, key: str, path: Path) -> dict[str, Any]:
    image = get_sample("test", 1).image
    path.write_bytes(encode_png(image))
    with DreamForge(api_key=key, base_url=base_url) as df:
        out: dict[str, Any] = {
            "caption": df.caption(image, length="short"),
            "caption_stream": list(df.caption(str(path), stream=True)),
            "answer": df.query(encode_png(image), "how many shapes are there?"),
            "answer_stream": list(df.query(path, "how many shapes are there?", stream=True)),
            "objects": df.detect(image, "red circle", model="default"),
            "points": df.point(path, "red circle"),
            "compare": df.compare("caption", image, ["default", "default@production"], length="short"),
            "capped": df.caption(image, max_tokens=2),
            "capped_stream": list(df.query(image, "how many shapes are there?", stream=True, max_tokens=1)),
            "one_point": df.point(get_sample("test", 33).image, "green square", max_objects=1),
            "batch": df.batch([{"skill": "caption", "image": image}, {"skill": "point", "image": path,
                                                                       "object": "x"}]),
            "chat": df.chat("how many shapes are there?", image),
            "chat_stream": list(df.chat("how many shapes are there?", path, stream=True)),
            "chat_messages": df.chat([{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": to_data_url(image)}},
                {"type": "text", "text": "how many shapes are there?"}]}], max_tokens=1),
        }
        try:
            list(df.chat("hello", image, model="no-such-model", stream=True))
        except DreamForgeError as exc:
            out["chat_stream_error"] = exc
        try:
            df.detect(b"definitely not an image", "cat")
        except DreamForgeError as exc:
            out["error"] = exc
        try:
            list(df.query(image, "what?", model="no-such-model", stream=True))
        except DreamForgeError as exc:
            out["stream_error"] = exc
    return out


async def test_the_sdk_skill_methods(stack: Stack, app_key: Account, tmp_path: Path) -> None:
    out = await asyncio.to_thread(sdk_session, stack.base_url, app_key.key, tmp_path / "image.png")
    assert isinstance(out["caption"]["caption"], str) and out["caption"]["request_id"]
    assert all(isinstance(p, str) for p in out["caption_stream"] + out["answer_stream"])
    assert "".join(out["answer_stream"]) == out["answer"]["answer"]
    assert all(well_formed_box(b) for b in out["objects"]["objects"])
    assert isinstance(out["points"]["points"], list)
    assert [r["reference"] for r in out["compare"]["results"]] == ["default", "default@production"]
    assert out["compare"]["results"][0]["status"] == 200
    assert 0 < out["capped"]["metrics"]["output_tokens"] <= 2 and len(out["capped_stream"]) <= 1
    # the trained model points at all three green squares of test image 33 (see the settings test below)
    assert len(out["one_point"]["points"]) == (1 if stack.model.trained else len(out["one_point"]["points"][:1]))
    assert [r["skill"] for r in out["batch"]["results"]] == ["caption", "point"]
    assert out["error"].status == 400 and "`image_url`" in out["error"].message
    assert out["stream_error"].status == 404
    reply = out["chat"]["choices"][0]["message"]["content"]
    assert reply and "".join(out["chat_stream"]) == reply and len(out["chat_stream"]) >= 1
    assert out["chat_messages"]["usage"]["completion_tokens"] == 1
    assert out["chat_messages"]["choices"][0]["finish_reason"] == "length"
    assert out["chat_stream_error"].status == 404 and "no-such-model" in out["chat_stream_error"].message


def rate_limited_session(base_url: str, key: str) -> dict[str, Any]:
    """Spend the key's whole bucket, then call a skill with and without retries (blocking: run in a thread)."""
    image = get_sample("test", 1).image
    out: dict[str, Any] = {}
    with DreamForge(api_key=key, base_url=base_url) as df, \
            DreamForge(api_key=key, base_url=base_url, max_retries=0) as once:
        def spend_bucket() -> int:
            for calls in range(1, 200):
                try:
                    once.whoami()
                except DreamForgeError as exc:
                    assert exc.status == 429, exc
                    return calls
            raise AssertionError("the rate limit never refused a call")

        out["spent"] = spend_bucket()
        try:
            once.caption(image, length="short")
        except DreamForgeError as exc:
            out["refused"] = exc
        spend_bucket()
        out["retried"] = df.caption(image, length="short")  # waits out Retry-After, then is served
    return out


async def test_the_sdk_waits_out_the_rate_limit_and_retries(stack: Stack) -> None:
    account = await stack.account(scopes=("app",), rate_limit_per_minute=60)  # 60 at once, then one a second
    out = await asyncio.to_thread(rate_limited_session, stack.base_url, account.key)
    assert out["spent"] > 1
    assert out["refused"].status == 429 and "retry in" in out["refused"].message
    assert out["retried"]["caption"] and out["retried"]["request_id"]


def cli_session(base_url: str, key: str, path: Path, question: str, obj: str) -> dict[str, Any]:
    """`dreamforge analyze` as a user types it (blocking, so it runs in a thread)."""
    from click.testing import CliRunner

    from dreamforge.cli import main

    def analyze(*args: str, stdin: bytes | None = None) -> Any:
        return CliRunner().invoke(main, ["--api-key", key, "--url", base_url, "analyze", *args], input=stdin)

    return {
        "query": analyze(str(path), "query", question),
        "query_stream": analyze(str(path), "query", question, "--stream"),
        "detect": analyze("-", "detect", obj, stdin=path.read_bytes()),
        "caption": analyze(str(path), "caption", "--length", "short", "--model", "default"),
        "compare": analyze(str(path), "point", obj, "--model", "default", "--model", "default@production"),
        "no_question": analyze(str(path), "query"),
        "missing_file": analyze(str(path.with_name("nothing.png")), "caption"),
        "not_an_image": analyze(__file__, "caption"),
        "no_model": analyze(str(path), "query", question, "--model", "no-such-model"),
        "capped": analyze(str(path), "caption", "--max-tokens", "2"),
        "misplaced": analyze(str(path), "caption", "--max-objects", "1"),
    }


async def test_the_cli_analyzes_an_image(stack: Stack, tmp_path: Path) -> None:
    app_key = await stack.account(scopes=("app",))  # its own key: the module's shares one rate limit
    sample = get_sample("test", 3)
    path = tmp_path / "shapes.png"
    path.write_bytes(encode_png(sample.image))
    qa = next(q for q in sample.questions() if q.qtype == "colour")
    target = next(o for o in sample.objects if [p.name for p in sample.objects].count(o.name) == 1)
    out = await asyncio.to_thread(cli_session, stack.base_url, app_key.key, path, qa.question, target.name)
    for name in ("query", "query_stream", "detect", "caption", "compare"):
        assert out[name].exit_code == 0, (name, out[name].output)
    answer = json.loads(out["query"].output)
    assert answer["request_id"] and answer["latency_ms"] > 0 and isinstance(answer["answer"], str)
    assert out["query_stream"].output == answer["answer"] + "\n"  # a query is greedy, streamed or not
    objects = json.loads(out["detect"].output)["objects"]
    assert all(well_formed_box(b) for b in objects), objects
    assert isinstance(json.loads(out["caption"].output)["caption"], str)
    compared = json.loads(out["compare"].output)["results"]
    assert [r["reference"] for r in compared] == ["default", "default@production"]
    # side by side: this tenant has no models yet, so only the built-in default answers
    assert [r["status"] for r in compared] == [200, 404], json.dumps(compared)
    # bad input: a usage error (exit 2) or the gateway's message (exit 1), never a traceback
    assert out["no_question"].exit_code == 2 and "query needs TEXT, the question" in out["no_question"].output
    assert out["missing_file"].exit_code == 2 and "No such file" in out["missing_file"].output
    assert out["not_an_image"].exit_code == 1 and "400" in out["not_an_image"].output
    assert out["no_model"].exit_code == 1 and "404" in out["no_model"].output
    assert out["capped"].exit_code == 0 and 0 < json.loads(out["capped"].output)["metrics"]["output_tokens"] <= 2
    assert out["misplaced"].exit_code == 2 and "--max-objects is for detect and point" in out["misplaced"].output
    if stack.model.trained:
        assert normalise(answer["answer"]) == normalise(qa.answer), (qa.question, answer, qa.answer)
        assert any(iou(b, target.box) >= 0.5 for b in objects), (target, objects)


async def test_grpc_front_serves_skills_and_streams_with_request_ids(stack: Stack, app_key: Account) -> None:
    image = inference_pb2.Image(data=encode_png(get_sample("test", 2).image))
    metadata = (("authorization", f"Bearer {app_key.key}"), ("x-request-id", "grpc-req-1"))
    async with channel(stack.grpc_target) as ch:
        stub = gateway_pb2_grpc.GatewayServiceStub(ch)
        reply = await stub.Query(inference_pb2.QueryRequest(image=image, question="how many shapes are there?"),
                                 metadata=metadata)
        assert reply.request_id.startswith("req_") and reply.model_id and isinstance(reply.text, str)
        chunks = [c async for c in stub.Stream(inference_pb2.StreamRequest(
            caption=inference_pb2.CaptionRequest(image=image, length="short", request_id="grpc-req-2")),
            metadata=metadata[:1])]
        assert chunks[-1].completed and chunks[-1].final.request_id.startswith("req_")
        assert chunks[-1].final.request_id != reply.request_id
        assert "".join(c.text for c in chunks) == chunks[-1].final.text
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Detect(inference_pb2.DetectRequest(image=image, object="x", model=inference_pb2.Target(
                reference="no-such-model")), metadata=metadata)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        capped = await stub.Caption(inference_pb2.CaptionRequest(image=image, max_tokens=2), metadata=metadata[:1])
        assert 0 < capped.output_tokens <= 2
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Point(inference_pb2.PointRequest(image=image, object="x", max_objects=-1), metadata=metadata[:1])
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "`max_objects`" in (info.value.details() or "")


async def test_grpc_front_batch_and_compare(stack: Stack) -> None:
    app_key = await stack.account(scopes=("app",))  # its own key: the module's shares one rate limit
    sample = get_sample("test", 4)
    image = inference_pb2.Image(data=encode_png(sample.image))
    target = next(o for o in sample.objects if [p.name for p in sample.objects].count(o.name) == 1)
    question = next(q for q in sample.questions() if q.qtype == "colour")
    metadata = (("authorization", f"Bearer {app_key.key}"),)
    detect = gateway_pb2.BatchCall(detect=inference_pb2.DetectRequest(image=image, object=target.name))
    query = gateway_pb2.BatchCall(query=inference_pb2.QueryRequest(image=image, question=question.question))
    elsewhere = gateway_pb2.BatchCall(caption=inference_pb2.CaptionRequest(
        image=image, length="short", model=inference_pb2.Target(reference="no-such-model")))
    async with channel(stack.grpc_target) as ch:
        stub = gateway_pb2_grpc.GatewayServiceStub(ch)
        alone = await stub.Query(inference_pb2.QueryRequest(image=image, question=question.question),
                                 metadata=metadata)
        batch = await stub.Batch(gateway_pb2.BatchRequest(request_id="grpc-batch", calls=[detect, query, elsewhere]),
                                 metadata=metadata)
        compared = await stub.Compare(gateway_pb2.CompareRequest(call=query, models=["default", "no-such-model"]),
                                      metadata=metadata)

        async def refused(call: Any, request: Any) -> grpc.aio.AioRpcError:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call(request, metadata=metadata)
            return info.value

        blank_object = gateway_pb2.BatchCall(detect=inference_pb2.DetectRequest(image=image, object=" "))
        bad_input = await refused(stub.Batch, gateway_pb2.BatchRequest(calls=[query, blank_object]))
        empty = await refused(stub.Batch, gateway_pb2.BatchRequest())
        too_many = await refused(stub.Batch, gateway_pb2.BatchRequest(calls=[query] * 17))
        no_call = await refused(stub.Compare, gateway_pb2.CompareRequest(models=["default"]))

    assert batch.request_id.startswith("req_")  # not the caller's "grpc-batch": the gateway names outputs
    assert [r.request_id for r in batch.results] == [f"{batch.request_id}.{i}" for i in range(3)]
    assert [r.WhichOneof("outcome") for r in batch.results] == ["response", "response", "error"]
    found = [{k: getattr(box, k) for k in ("x_min", "y_min", "x_max", "y_max")}
             for box in batch.results[0].response.objects]
    assert all(well_formed_box(b) for b in found), found
    assert batch.results[1].response.text == alone.text  # the same call, batched or alone (greedy)
    assert batch.results[2].reference == "no-such-model"
    assert batch.results[2].error.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert "no-such-model" in batch.results[2].error.message
    assert [r.reference for r in compared.results] == ["default", "no-such-model"]
    assert compared.results[0].response.text == alone.text
    assert compared.results[0].request_id == f"{compared.request_id}.0"
    assert compared.results[1].error.code == grpc.StatusCode.NOT_FOUND.value[0]
    for error, named in ((bad_input, "`calls[1].detect.object`"), (empty, "`calls`"), (too_many, "got 17"),
                         (no_call, "`call`")):
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and named in (error.details() or ""), error
    if stack.model.trained:
        assert any(iou(b, target.box) >= 0.5 for b in found), (target, found)
        assert normalise(alone.text) == normalise(question.answer), (question, alone.text)


# -- correctness, with the trained default model --------------------------------------------------

def iou(a: dict[str, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a["x_max"], b[2]) - max(a["x_min"], b[0]))
    iy = max(0.0, min(a["y_max"], b[3]) - max(a["y_min"], b[1]))
    inter = ix * iy
    union = (a["x_max"] - a["x_min"]) * (a["y_max"] - a["y_min"]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", text.lower()).strip()


def correctness_session(base_url: str, key: str, indices: Iterator[int]) -> dict[str, list[bool]]:
    """Eight checks per kind, at most two per image, so that no single crowded image decides a kind."""
    right: dict[str, list[bool]] = {"colour": [], "count": [], "detect": []}
    with DreamForge(api_key=key, base_url=base_url, timeout_s=120) as df:
        for index in indices:
            sample = get_sample("test", index)
            asked = {"colour": 0, "count": 0}
            for qa in sample.questions():
                if qa.qtype in asked and len(right[qa.qtype]) < 8 and asked[qa.qtype] < 2:
                    asked[qa.qtype] += 1
                    answer = df.query(sample.image, qa.question)["answer"]
                    right[qa.qtype].append(normalise(answer) == normalise(qa.answer))
            singles = [(name, boxes) for name, boxes in sample.detect_targets().items() if len(boxes) == 1]
            for name, boxes in singles[: min(2, 8 - len(right["detect"]))]:
                found = df.detect(sample.image, name)["objects"]
                right["detect"].append(any(iou(b, boxes[0]) >= 0.5 for b in found))
    return right


async def test_answers_are_right_with_the_trained_model(stack: Stack, app_key: Account) -> None:
    if not stack.model.trained:
        pytest.skip(NEEDS_TRAINED)
    right = await asyncio.to_thread(correctness_session, stack.base_url, app_key.key, iter(range(6)))
    # Floors well above chance (colour: 1 of 6 names; count: 1 to 6; a box at IoU >= 0.5 by luck: ~0),
    # below the committed model's held-out scores (colour 89 %, count 79 %, detect F1 92 %,
    # models/default/README.md).
    assert sum(right["colour"]) / len(right["colour"]) >= 0.6, right["colour"]
    assert sum(right["count"]) / len(right["count"]) >= 0.4, right["count"]
    assert sum(right["detect"]) / len(right["detect"]) >= 0.4, right["detect"]


def moondream_correctness(base_url: str, key: str) -> dict[str, list[bool]]:
    """The official moondream client on generated test images: is each answer right?"""
    import moondream as md

    model = md.vl(endpoint=f"{base_url}/v1", api_key=key)
    right: dict[str, list[bool]] = {"caption": [], "query": [], "detect": [], "point": []}
    for index in range(1, 7):
        sample = get_sample("test", index)
        caption = model.caption(sample.image)["caption"].lower()
        right["caption"].append(all(f"{o.colour} {o.shape}" in caption for o in sample.objects))
        qa = next(q for q in sample.questions() if q.qtype == "colour")
        right["query"].append(normalise(model.query(sample.image, qa.question)["answer"]) == qa.answer)
        for obj in sample.objects:
            if [o.name for o in sample.objects].count(obj.name) != 1:
                continue
            found = model.detect(sample.image, obj.name)["objects"]
            right["detect"].append(any(iou(b, obj.box) >= 0.5 for b in found))
            x0, y0, x1, y1 = obj.box
            points = model.point(sample.image, obj.name)["points"]
            right["point"].append(any(x0 <= p["x"] <= x1 and y0 <= p["y"] <= y1 for p in points))
    return right


async def test_the_moondream_client_gets_right_answers(stack: Stack, app_key: Account) -> None:
    pytest.importorskip("moondream", reason=MOONDREAM_MISSING)
    if not stack.model.trained:
        pytest.skip(NEEDS_TRAINED)
    right = await asyncio.to_thread(moondream_correctness, stack.base_url, app_key.key)
    # Chance is ~0 for a caption naming every object, a box at IoU >= 0.5 or a point inside a box, 1/6 for a
    # colour; the floors sit below the held-out scores in models/default/README.md (caption content 91 %,
    # colour 89 %, detect F1 92 %, point hit-rate 93 %).
    assert sum(right["caption"]) >= 3, right["caption"]
    assert sum(right["query"]) >= 4, right["query"]
    for skill in ("detect", "point"):
        assert len(right[skill]) >= 10 and sum(right[skill]) / len(right[skill]) >= 0.5, (skill, right[skill])
