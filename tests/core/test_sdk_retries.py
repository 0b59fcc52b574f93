"""What the SDK sends again by itself: what was not served, reads, and skill calls under their
Idempotency-Key (which the gateway answers from the first call); never a streamed call once sent."""

from __future__ import annotations

import httpx
import pytest

from dreamforge import client as sdk
from dreamforge.client import MAX_RETRY_WAIT_S, retry_delay
from dreamforge.infra import free_port


def reply(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


@pytest.mark.parametrize(("response", "attempt", "repeatable", "delay"), [
    (reply(429, **{"Retry-After": "2"}), 0, False, 2.0),         # the rate limit's own wait
    (reply(429), 1, False, 1.0),                                  # no Retry-After: backoff 0.5, 1, 2 ... s
    (reply(429, **{"Retry-After": "soon"}), 0, False, 0.5),
    (reply(429, **{"Retry-After": str(int(MAX_RETRY_WAIT_S) + 1)}), 0, False, None),  # a quota: raise now
    (reply(503), 2, True, 2.0),                                   # a read or a keyed call can be repeated
    (reply(504), 9, True, 8.0),                                   # backoff capped
    (reply(409, **{"Retry-After": "1"}), 0, True, 1.0),           # the keyed first call is still running
    (reply(409), 0, True, None),                                  # a real conflict
    (reply(409, **{"Retry-After": "1"}), 0, False, None),
    (reply(503), 0, False, None),                                 # an unkeyed call may have been served
    (reply(502), 0, False, None),
    (reply(500), 0, True, None),
    (reply(400), 0, True, None),
    (reply(200), 0, True, None),
])
def test_retry_delay(response: httpx.Response, attempt: int, repeatable: bool, delay: float | None) -> None:
    assert retry_delay(response, attempt, repeatable) == delay


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waited: list[float] = []
    monkeypatch.setattr(sdk.time, "sleep", waited.append)
    return waited


def test_a_gateway_that_is_not_there_is_tried_again_then_reported(pauses: list[float]) -> None:
    with sdk.DreamForge(api_key="df_x", base_url=f"http://127.0.0.1:{free_port()}", max_retries=2) as df, \
            pytest.raises(httpx.ConnectError):
        df.whoami()
    assert pauses == [0.5, 1.0]


def answering(*outcomes: int | type[Exception]) -> tuple[list[httpx.Request], httpx.MockTransport]:
    """A transport that answers each request with the next status (or raises the next transport error)."""
    seen: list[httpx.Request] = []
    pending = list(outcomes)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        outcome = pending.pop(0)
        if isinstance(outcome, type):
            raise outcome("lost", request=request)
        body = {"answer": "4", "request_id": "req_1"} if outcome == 200 else {"error": {"code": "x", "message": "m"}}
        return httpx.Response(outcome, json=body)

    return seen, httpx.MockTransport(handle)


def client_on(transport: httpx.MockTransport, **options: int) -> sdk.DreamForge:
    df = sdk.DreamForge(api_key="df_x", base_url="http://gateway", **options)
    df._http = httpx.Client(transport=transport, base_url="http://gateway")
    return df


def test_a_skill_call_is_retried_under_one_idempotency_key(pauses: list[float]) -> None:
    seen, transport = answering(503, httpx.ReadTimeout, 200)
    assert client_on(transport).query(b"png", "how many?")["answer"] == "4"
    keys = {r.headers["Idempotency-Key"] for r in seen}
    assert len(seen) == 3 and len(keys) == 1 and keys.pop().startswith("sdk-")
    assert pauses == [0.5, 1.0]
    seen, transport = answering(200, 200)
    df = client_on(transport)
    df.detect(b"png", "cat"), df.point(b"png", "cat")
    assert seen[0].headers["Idempotency-Key"] != seen[1].headers["Idempotency-Key"]  # a key per call


def test_a_streamed_call_or_an_unkeyed_write_is_not_repeated(pauses: list[float]) -> None:
    seen, transport = answering(503)
    with pytest.raises(sdk.DreamForgeError) as err:
        client_on(transport).query(b"png", "how many?", stream=True)
    assert err.value.status == 503 and len(seen) == 1 and "Idempotency-Key" not in seen[0].headers
    seen, transport = answering(httpx.ReadTimeout)
    with pytest.raises(httpx.ReadTimeout):
        client_on(transport).create_model("shapes")  # sent, answer lost: it may exist now
    assert len(seen) == 1 and pauses == []
