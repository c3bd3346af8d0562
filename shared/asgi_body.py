"""Reading a request body in a thin ASGI endpoint: media type, size limit, then the bytes.

Shared by ingest's webhook endpoint and the api's internal-update endpoint, the two hot
paths served without a framework.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any

from shared.errors import InvalidInput, MethodNotAllowed, PayloadTooLarge, UnsupportedMediaType

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
MAX_BODY_BYTES = 64 * 1024


def media_type(headers: dict[bytes, bytes]) -> bytes:
    return headers.get(b"content-type", b"").split(b";")[0].strip().lower()


async def read_body(scope: dict[str, Any], receive: Receive, headers: dict[bytes, bytes],
                    accepted: Collection[bytes], max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The body of a POST, refusing a wrong method or media type and anything over ``max_bytes``
    (from Content-Length before reading, else while reading)."""
    if scope["method"] != "POST":
        raise MethodNotAllowed("use POST")
    if media_type(headers) not in accepted:
        raise UnsupportedMediaType(f"Content-Type must be {' or '.join(t.decode() for t in accepted)}")
    length = headers.get(b"content-length", b"")
    if length.isdigit() and int(length) > max_bytes:
        raise PayloadTooLarge(f"the body is over {max_bytes} bytes")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidInput("the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"the body is over {max_bytes} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
