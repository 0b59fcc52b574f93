"""Image files on the skill routes (services/gateway/uploads.py): a multipart form or a raw image
body is served exactly as the same call in JSON, and a malformed one is a 400 that says what to fix."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from dreamforge.images import encode_png
from dreamforge.world import get_sample
from tests.gateway.conftest import Account, Stack, gateway_calling
from tests.gateway.images import encoded


@pytest.fixture(scope="module")
async def uploader(stack: Stack) -> Account:
    return await stack.account(scopes=("app",))


def client(stack: Stack, account: Account) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.base_url, headers=account.headers, timeout=60)


async def test_a_form_and_a_raw_body_answer_as_json_does(stack: Stack, uploader: Account) -> None:
    sample = get_sample("test", 2)
    png = encode_png(sample.image)
    question = next(q for q in sample.questions() if q.qtype == "colour")
    target = sample.objects[0].name
    async with client(stack, uploader) as c:
        as_json = await c.post("/v1/query", json={"image_url": base64.b64encode(png).decode(),
                                                  "question": question.question})
        as_form = await c.post("/v1/query", files={"image": ("shapes.png", png, "image/png")},
                               data={"question": question.question})
        as_raw = await c.post("/v1/query", params={"question": question.question}, content=png,
                              headers={"content-type": "image/png"})
        png_url = "data:image/png;base64," + base64.b64encode(png).decode()
        as_urlencoded = await c.post("/v1/query", data={"question": question.question, "image": png_url})
        detect_json = await c.post("/v1/detect", json={"image_url": base64.b64encode(png).decode(),
                                                       "object": target})
        detect_raw = await c.post("/v1/detect", params={"object": target, "model": "default"}, content=png,
                                  headers={"content-type": "application/octet-stream"})
        caption_form = await c.post("/v1/caption", files={"image": ("s.png", png, "image/png")},
                                    data={"length": "short", "stream": "true"})
    for reply in (as_json, as_form, as_raw, as_urlencoded, detect_json, detect_raw, caption_form):
        assert reply.status_code == 200, reply.text
    answers = {r.json()["answer"] for r in (as_json, as_form, as_raw, as_urlencoded)}
    assert len(answers) == 1, answers
    assert as_form.json()["request_id"] != as_raw.json()["request_id"]
    assert detect_raw.json()["objects"] == detect_json.json()["objects"]
    assert caption_form.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in caption_form.text.splitlines() if line.startswith("data: ")]
    assert events[-1]["completed"] is True and "".join(e.get("chunk", "") for e in events).strip()
    if stack.model.trained:
        assert as_form.json()["answer"] == question.answer, (question, as_form.json())


PNG = encoded()
BAD_UPLOADS: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/query", {"files": {"image": ("a.png", PNG, "image/png")}}, "form field `question` is required: ask"),
    ("/v1/query", {"data": {"question": "what?"}, "files": {"other": ("a.png", PNG, "image/png")}},
     "unknown form field `other`"),
    ("/v1/query", {"files": {"photo": ("a.png", PNG, "image/png")}, "data": {"question": "hm"}}, "`photo`"),
    ("/v1/detect", {"data": {"object": "dot", "colour": "red"}, "files": {"image": ("a.png", PNG, "image/png")}},
     "unknown form field `colour`: the image goes in form field `image`, and this route takes `object`, `model`"),
    ("/v1/caption", {"data": {"stream": "maybe"}, "files": {"image": ("a.png", PNG, "image/png")}},
     "field `stream` must be true or false"),
    ("/v1/caption", {"files": {"image": ("a.txt", b"not an image", "text/plain")}}, "image could not be"),
    ("/v1/caption", {"files": {"image": ("a.png", PNG, "image/png"), "image_url": ("b.png", PNG, "image/png")}},
     "send one image"),
    ("/v1/point", {"content": PNG, "headers": {"content-type": "image/png"}}, "query parameter `object` is required"),
    ("/v1/query", {"data": {"question": "what?"}}, "the form needs the image in field `image`"),
    ("/v1/point", {"content": PNG, "headers": {"content-type": "image/png"}, "params": {"object": "x", "size": "9"}},
     "unknown query parameter `size`: the image goes in the request body"),
    ("/v1/caption", {"content": b"", "headers": {"content-type": "image/jpeg"}}, "`image_url` is required"),
    ("/v1/caption", {"content": b"GIF89a...", "headers": {"content-type": "image/webp"}}, "image could not be"),
    ("/v1/caption", {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}}, "boundary"),
    ("/v1/caption", {"content": b"garbage", "headers": {"content-type": "multipart/form-data; boundary=zz"}},
     "multipart/form-data"),
]


@pytest.mark.parametrize(("path", "request_kwargs", "names"), BAD_UPLOADS)
async def test_a_bad_upload_is_a_400_that_says_what_to_fix(stack: Stack, uploader: Account, path: str,
                                                           request_kwargs: dict[str, Any], names: str) -> None:
    async with client(stack, uploader) as c:
        reply = await c.post(path, **request_kwargs)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert names in error["message"], error["message"]
    assert error["request_id"] == reply.headers["x-request-id"]


async def test_a_file_over_the_image_limit_is_a_400_naming_where_it_came(stack: Stack, uploader: Account) -> None:
    too_big = b"\xff\xd8\xff" + b"\0" * (10 * 1024 * 1024)
    async with client(stack, uploader) as c:
        raw = await c.post("/v1/caption", content=too_big, headers={"content-type": "image/jpeg"})
        form = await c.post("/v1/caption", files={"image": ("big.jpg", too_big, "image/jpeg")})
    assert raw.status_code == form.status_code == 400
    assert "the request body: image is 10485763 bytes; the limit" in raw.json()["error"]["message"]
    assert "form field `image`: image is 10485763 bytes" in form.json()["error"]["message"]


async def test_an_upload_over_the_body_limit_is_a_413_naming_it(stack: Stack, uploader: Account) -> None:
    big = b"\x89PNG" + b"\0" * (70 * 1024)
    async with gateway_calling(stack, "127.0.0.1:1", uploader.headers, max_body_bytes=64 * 1024) as c:
        form = await c.post("/v1/caption", files={"image": ("big.png", big, "image/png")})
        raw = await c.post("/v1/caption", content=big, headers={"content-type": "image/png"})
    for reply in (form, raw):
        assert reply.status_code == 413 and "65536 bytes" in reply.json()["error"]["message"], reply.text


async def test_uploads_need_a_key_and_json_routes_are_untouched(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as c:
        anonymous = await c.post("/v1/caption", content=PNG, headers={"content-type": "image/png"})
    assert anonymous.status_code == 401
    account = await stack.account(scopes=("app", "ml"))
    async with client(stack, account) as c:  # a route without uploads reads its body as JSON, as before
        reply = await c.post("/v1/models", content=PNG, headers={"content-type": "image/png"})
    assert reply.status_code == 400 and "malformed JSON body" in reply.json()["error"]["message"]


async def test_openapi_documents_the_form(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as c:
        doc = (await c.get("/docs/openapi.json")).json()
    query = doc["paths"]["/v1/query"]["post"]
    form = query["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["image", "question"] and form["properties"]["image"]["format"] == "binary"
    assert set(form["properties"]) == {"image", "question", "stream", "model"}
    assert "application/json" in query["requestBody"]["content"] and "curl -F image=@photo.jpg" in query["description"]
    assert "multipart/form-data" not in doc["paths"]["/v1/batch"]["post"]["requestBody"]["content"]
