"""What the SDK sends again by itself: only requests that were certainly not served."""

from __future__ import annotations

import httpx
import pytest

from dreamforge.client import MAX_RETRY_WAIT_S, retry_delay


def reply(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


@pytest.mark.parametrize(("method", "response", "attempt", "delay"), [
    ("POST", reply(429, **{"Retry-After": "2"}), 0, 2.0),         # the rate limit's own wait
    ("POST", reply(429), 1, 1.0),                                  # no Retry-After: backoff 0.5, 1, 2 ... s
    ("POST", reply(429, **{"Retry-After": "soon"}), 0, 0.5),
    ("POST", reply(429, **{"Retry-After": str(int(MAX_RETRY_WAIT_S) + 1)}), 0, None),  # a quota: raise now
    ("GET", reply(503), 2, 2.0),                                   # a read can be repeated
    ("GET", reply(504), 9, 8.0),                                   # backoff capped
    ("POST", reply(503), 0, None),                                 # a skill call may have been served
    ("POST", reply(502), 0, None),
    ("GET", reply(500), 0, None),
    ("POST", reply(400), 0, None),
    ("GET", reply(200), 0, None),
])
def test_retry_delay(method: str, response: httpx.Response, attempt: int, delay: float | None) -> None:
    assert retry_delay(method, response, attempt) == delay


def test_a_gateway_that_is_not_there_is_tried_again_then_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from dreamforge import client as sdk
    from dreamforge.infra import free_port

    pauses: list[float] = []
    monkeypatch.setattr(sdk.time, "sleep", pauses.append)
    with sdk.DreamForge(api_key="df_x", base_url=f"http://127.0.0.1:{free_port()}", max_retries=2) as df, \
            pytest.raises(httpx.ConnectError):
        df.whoami()
    assert pauses == [0.5, 1.0]
