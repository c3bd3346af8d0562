"""A response sent before the request's body was read closes its connection (``Connection: close``).

Quart answers some requests without reading their body: a 401 from ``before_request``, a 404 for
an unknown route, a 405, a 413 from ``Content-Length``. When the rest of the body reached hypercorn
after such a response, the keep-alive connection was neither reused nor closed: the client's next
request on it was never answered (hypercorn 0.18 with quart-trio; httpx hung on about one in twenty
refused POSTs). RFC 9112 §9.6 has a server that does not read a whole body close the connection;
saying so lets the client open a fresh one instead of waiting on this one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]
CLOSE = (b"connection", b"close")


def close_after_early_responses(app: Callable[..., Awaitable[None]]) -> App:
    """``app``, whose responses to requests with an unread body carry ``Connection: close``."""

    async def closing(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope["headers"]):
            await app(scope, receive, send)
            return
        body_read = False

        async def tracked_receive() -> dict[str, Any]:
            nonlocal body_read
            message = await receive()
            body_read |= not message.get("more_body", False)  # the end of the body, or the client left
            return message

        async def closing_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and not body_read:
                message = {**message, "headers": [*message.get("headers", ()), CLOSE]}
            await send(message)

        await app(scope, tracked_receive, closing_send)

    return closing


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    return any((name == b"content-length" and value.strip() != b"0") or name == b"transfer-encoding"
               for name, value in headers)
