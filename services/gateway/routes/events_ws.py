"""`WS /v1/events/ws`: the caller's tenant's events, live (`?types=model.updated,...` to filter).

Authenticated like any route (header, or `?api_key=` since browsers cannot set headers on
a WebSocket). First frame: `{"type": "subscribed", ...}`; then one frame per event:
`{"type": "model.updated", "subject": ..., "event": {...}}`. Unsubscribes on disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect, WebSocketException
from litestar.params import Parameter

from dreamforge.grpcio import InvalidArgument
from services.gateway.event_relay import EventRelay, Feed, SlowConsumer, parse_types
from services.gateway.keys import Principal

CLOSE_TRY_AGAIN_LATER = 1013


@websocket("/v1/events/ws", name="events_ws")
async def events_ws(
    socket: WebSocket[Any, Any, Any], relay: EventRelay, principal: Principal,
    types: Annotated[str | None, Parameter(description="Comma-separated event types; all when absent")] = None,
) -> None:
    try:
        names = parse_types(types)
    except InvalidArgument as exc:
        raise WebSocketException(detail=str(exc), code=4400) from None
    await socket.accept()
    async with relay.subscribe(principal.tenant_id, names) as feed:
        await socket.send_json({"type": "subscribed", "tenant_id": principal.tenant_id, "types": names or ["*"]})
        pump = asyncio.create_task(_pump(socket, feed))
        watch = asyncio.create_task(_until_disconnect(socket))
        try:
            done, _ = await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, watch):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if pump in done and isinstance(pump.exception(), SlowConsumer):
            with contextlib.suppress(Exception):
                await socket.close(code=CLOSE_TRY_AGAIN_LATER, reason=str(pump.exception()))


async def _pump(socket: WebSocket[Any, Any, Any], feed: Feed) -> None:
    while True:
        await socket.send_json(await feed.next())


async def _until_disconnect(socket: WebSocket[Any, Any, Any]) -> None:
    """Read (and ignore) client frames until it goes away."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return
