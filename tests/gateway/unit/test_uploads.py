"""The upload parsers never fail with anything but a 400 (`ClientException`), whatever the bytes:
a valid multipart form, mutated thousands of ways (seeded), and random Content-Type parameters."""

from __future__ import annotations

import random
import string

import httpx
import pytest
from litestar.exceptions import ClientException

from services.gateway.uploads import UPLOAD_FIELDS, _from_form, _from_raw, _from_urlencoded

ALLOWED = UPLOAD_FIELDS["/v1/query"]


def _valid_form() -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://gateway/v1/query", data={"question": "what colour?", "model": "default"},
                            files={"image": ("a.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "image/png")})
    return request.read(), request.headers["content-type"]


def _mutated(body: bytes, rng: random.Random) -> bytes:
    out = bytearray(body)
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(out) + 1)
        roll = rng.random()
        if roll < 0.4 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif roll < 0.7:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 5)))
        elif roll < 0.85:
            del out[at:at + rng.randint(1, 20)]
        else:
            del out[at:]
    return bytes(out)


def _only_client_errors(parse, *args) -> None:  # type: ignore[no-untyped-def]
    try:
        parse(*args)
    except ClientException:
        pass


def test_the_valid_form_parses() -> None:
    body, content_type = _valid_form()
    fields = _from_form(body, content_type, ALLOWED, 1 << 20)
    assert fields["question"] == "what colour?" and fields["model"] == "default" and fields["image_url"]


@pytest.mark.parametrize("seed", range(4))
def test_mutated_bodies_are_parsed_or_refused_with_a_400(seed: int) -> None:
    body, content_type = _valid_form()
    rng = random.Random(seed)
    for _ in range(500):
        mutated = _mutated(body, rng)
        _only_client_errors(_from_form, mutated, content_type, ALLOWED, 1 << 20)
        _only_client_errors(_from_urlencoded, mutated, ALLOWED)
        _only_client_errors(_from_raw, b"\x89PNG", mutated[:200], ALLOWED)


def test_random_content_type_parameters_are_refused_with_a_400() -> None:
    rng = random.Random(7)
    alphabet = string.printable + "\x00\xff"
    for _ in range(2000):
        content_type = "multipart/form-data; " + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        body = ("--" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))).encode("latin-1")
        _only_client_errors(_from_form, body, content_type, ALLOWED, 1 << 20)
