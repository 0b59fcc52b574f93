"""Wire format of the streamed skills, frame by frame: Moondream's SSE (`data: {"chunk"}` ...
`data: {"completed": true}`) and OpenAI's `chat.completion.chunk` stream ending `data: [DONE]`.

The inference service here is scripted (fixed pieces of text) so the exact frames can be
checked; the official clients against the real inference service are in test_skill_clients.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import Account, Stack
from tests.gateway.fake_inference import (
    FAILS_MID_STREAM,
    MISSING,
    PIECES,
    ScriptedInference,
    gateway_with_scripted_inference,
)
from tests.gateway.images import PNG


@pytest.fixture(scope="module")
async def scripted(stack: Stack) -> AsyncIterator[tuple[str, ScriptedInference]]:
    async with gateway_with_scripted_inference(stack.gateway) as running:
        yield running


@pytest.fixture(scope="module")
async def app_key(stack: Stack) -> Account:
    return await stack.account(scopes=("app",))


def events(body: str) -> list[tuple[str | None, str]]:
    """(event name, data) of each SSE event; every event must be `[event: x\\n]data: ...\\n\\n`."""
    assert body.endswith("\n\n"), body[-100:]
    out: list[tuple[str | None, str]] = []
    for block in body[:-2].split("\n\n"):
        lines = block.split("\n")
        name = lines.pop(0)[len("event: "):] if lines[0].startswith("event: ") else None
        assert len(lines) == 1 and lines[0].startswith("data: "), block
        out.append((name, lines[0][len("data: "):]))
    return out


async def post(base_url: str, account: Account, path: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        return await client.post(path, json=body, headers={"X-Moondream-Auth": account.key})


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/caption", {"image_url": PNG, "length": "short", "stream": True}),
    ("/v1/query", {"image_url": PNG, "question": "What colour is the shape?", "stream": True}),
])
async def test_moondream_stream_frames(scripted: tuple[str, ScriptedInference], app_key: Account, path: str,
                                       body: dict[str, Any]) -> None:
    base_url, _ = scripted
    reply = await post(base_url, app_key, path, body)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/event-stream")
    request_id = reply.headers["x-request-id"]
    frames = [json.loads(data) for name, data in events(reply.text) if name is None]
    assert frames[:-1] == [{"chunk": piece, "completed": False} for piece in PIECES]
    assert frames[-1] == {"completed": True, "request_id": request_id, "model": "m_fake", "version": 3,
                          "alias": "production", "latency_ms": 12.5,
                          "metrics": {"input_tokens": 7, "output_tokens": 3}}


async def test_a_failure_before_the_first_chunk_is_a_plain_http_error(
        scripted: tuple[str, ScriptedInference], app_key: Account) -> None:
    base_url, _ = scripted
    reply = await post(base_url, app_key, "/v1/caption", {"image_url": PNG, "stream": True, "model": MISSING})
    assert reply.status_code == 404 and reply.headers["content-type"].startswith("application/json")
    assert reply.json()["error"]["request_id"] == reply.headers["x-request-id"]


async def test_a_failure_mid_stream_is_an_error_event(scripted: tuple[str, ScriptedInference],
                                                      app_key: Account) -> None:
    base_url, _ = scripted
    reply = await post(base_url, app_key, "/v1/query",
                       {"image_url": PNG, "question": "what?", "stream": True, "model": FAILS_MID_STREAM})
    assert reply.status_code == 200
    got = events(reply.text)
    assert got[0] == (None, json.dumps({"chunk": PIECES[0], "completed": False}, separators=(",", ":")))
    name, data = got[-1]
    assert name == "error"
    assert json.loads(data)["error"] == {"code": "bad_gateway", "request_id": reply.headers["x-request-id"],
                                         "message": "an internal service failed: the model runtime crashed"}


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "default", "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": [{"type": "text", "text": "Describe the image."},
                                     {"type": "image_url", "image_url": {"url": PNG}}]}], **extra}


async def test_openai_stream_chunks(scripted: tuple[str, ScriptedInference], app_key: Account) -> None:
    base_url, servicer = scripted
    reply = await post(base_url, app_key, "/v1/chat/completions",
                       chat_body(stream=True, max_tokens=50, temperature=0.2, stream_options={"include_usage": True}))
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/event-stream")
    request_id = reply.headers["x-request-id"]
    got = events(reply.text)
    assert got[-1] == (None, "[DONE]")
    chunks = [json.loads(data) for _, data in got[:-1]]
    for chunk in chunks:
        assert chunk["id"] == f"chatcmpl-{request_id}" and chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "default" and isinstance(chunk["created"], int)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]] == PIECES
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {
        "prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    chat = servicer.requests[-1].chat  # type: ignore[attr-defined]
    assert [m.role for m in chat.messages] == ["system", "user"]
    assert chat.messages[1].text == "Describe the image." and len(chat.messages[1].images) == 1
    assert chat.max_tokens == 50 and chat.temperature == pytest.approx(0.2)
    assert chat.request_id == request_id and chat.caller.key_id == app_key.key_id


async def test_openai_stream_without_usage_and_with_a_mid_stream_failure(
        scripted: tuple[str, ScriptedInference], app_key: Account) -> None:
    base_url, _ = scripted
    reply = await post(base_url, app_key, "/v1/chat/completions", chat_body(stream=True))
    chunks = [json.loads(data) for _, data in events(reply.text)[:-1]]
    assert all("usage" not in c for c in chunks)
    reply = await post(base_url, app_key, "/v1/chat/completions", chat_body(stream=True, model=FAILS_MID_STREAM))
    got = events(reply.text)
    assert got[-1] == (None, "[DONE]") and got[-2][0] == "error"
    assert json.loads(got[-2][1])["error"]["code"] == "bad_gateway"


async def test_openai_unary_completion_shape(scripted: tuple[str, ScriptedInference], app_key: Account) -> None:
    base_url, _ = scripted
    reply = await post(base_url, app_key, "/v1/chat/completions", chat_body(max_tokens=3))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    request_id = reply.headers["x-request-id"]
    assert body["id"] == f"chatcmpl-{request_id}" and body["object"] == "chat.completion"
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "".join(PIECES),
                                                        "refusal": None},
                                "finish_reason": "length", "logprobs": None}]  # 3 tokens out of max_tokens=3
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert body["request_id"] == request_id
    assert body["dreamforge"] == {"model": "m_fake", "version": 3, "alias": "production", "latency_ms": 12.5}
