"""A request body that stops arriving is a 408, not a request held open for ever.

Why: uvicorn waits as long as a client likes between the chunks of a body, so a client that sends its
headers and part of a body (a dropped link, a broken client, or many such on purpose) holds a connection
and a task until it goes away. Each read of the body here gets `DREAMFORGE_BODY_TIMEOUT_S` (30 s) for
its next chunk. Once the body is complete, reads pass through untouched: a streamed response waits on
`receive()` for the client's disconnect for as long as it streams.
"""

from __future__ import annotations

import asyncio

from litestar.enums import ScopeType
from litestar.exceptions import ClientException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send


class BodyDeadlineMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        complete = False

        async def receive_in_time() -> ReceiveMessage:
            nonlocal complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout(self.timeout_s):
                    message = await receive()
            except TimeoutError:
                reason = (f"the request body stopped arriving (nothing for {self.timeout_s:g} s): send the whole "
                          "body, as long as its Content-Length says, without pausing")
                # and close: the rest of the body is not worth waiting for
                raise ClientException(status_code=408, headers={"Connection": "close"}, detail=reason) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        await next_app(scope, receive_in_time, send)
