"""The webhook endpoints as a thin ASGI callable: the hot path, without a framework.

``POST /webhooks/payments/orders`` and ``/disputes`` are served here directly
(FIELD-NOTES: a framework costs ~25 % of the server's ceiling); every other path
goes to the Quart app (probes, metrics, schemas). Checks run cheapest first:
media type, size (from Content-Length, then while reading), signature, schema.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from shared.envelope import TraceContext
from ingest.processors import Processor, RequestContext
from ingest.signatures import verify
from shared.errors import InvalidInput, WebhookError
from shared.logs import get_logger
from shared.messages import DisputeWebhook, OrderWebhook, decode_json, encode_json
from shared.tracing import current_traceparent
from shared.problems import CONTENT_TYPE as PROBLEM, problem_body, problem_for

log = get_logger(__name__)
ROUTES: dict[str, type] = {"/webhooks/payments/orders": OrderWebhook, "/webhooks/payments/disputes": DisputeWebhook}
MAX_BODY_BYTES = 64 * 1024
ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


class _Reject(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class WebhookEndpoint:
    def __init__(self, processor: Processor, secrets: Sequence[bytes], fallback: ASGIApp, *,
                 deadline_seconds: float, deadline_error: Callable[[], WebhookError],
                 clock: Callable[[], float] = time.time) -> None:
        self._processor = processor
        self._secrets = tuple(secrets)
        self._fallback = fallback
        self._deadline = deadline_seconds
        self._deadline_error = deadline_error  # what running out of time means in this mode
        self._clock = clock

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        schema = ROUTES.get(scope.get("path", "")) if scope["type"] == "http" else None
        if schema is None:
            await self._fallback(scope, receive, send)
            return
        headers = dict(scope["headers"])
        correlation_id = headers.get(b"x-correlation-id", b"").decode("latin-1")[:128] or uuid.uuid4().hex
        status, body, extra = await self._respond(scope, receive, schema, headers, correlation_id)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"x-correlation-id", correlation_id.encode("latin-1")), *extra]})
        await send({"type": "http.response.body", "body": body})

    async def _respond(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict]], schema: type,
                       headers: dict[bytes, bytes], correlation_id: str) -> tuple[int, bytes, list]:
        try:
            body = await self._read(scope, receive, headers)
            verify(self._secrets, _text(headers, b"webhook-id"), _text(headers, b"webhook-timestamp"),
                   _text(headers, b"webhook-signature"), body, self._clock())
            webhook = decode_json(body, schema)
            context = RequestContext(dt.datetime.now(dt.UTC), correlation_id,
                                     TraceContext.from_header(_text(headers, b"traceparent")))
            current_traceparent.set(context.trace.traceparent)
            log.debug("webhook accepted for processing", correlation_id=correlation_id,
                      trace_id=context.trace.trace_id, provider_event_id=webhook.provider_event_id)
            with trio.move_on_after(self._deadline):
                accepted = await self._processor.process(webhook, context)
                return accepted.status, encode_json(accepted.body), [(b"content-type", b"application/json")]
            raise self._deadline_error()
        except _Reject as reject:
            return reject.status, problem_body(reject.status, reject.title, reject.detail), [(b"content-type", PROBLEM.encode())]
        except WebhookError as error:
            body, status, extra = problem_for(error)
            return status, body, [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        except Exception:  # noqa: BLE001 - the last line of defence: log it, never lose the 5xx's cause
            log.exception("unexpected error in webhook endpoint", path=scope["path"])
            return 500, problem_body(500, "Internal error", "unexpected error; it was logged"), [
                (b"content-type", PROBLEM.encode())]

    async def _read(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict]],
                    headers: dict[bytes, bytes]) -> bytes:
        if scope["method"] != "POST":
            raise _Reject(405, "Method not allowed", "use POST")
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if media_type != b"application/json":
            raise _Reject(415, "Unsupported media type", "Content-Type must be application/json")
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise _Reject(413, "Payload too large", f"the body is over {MAX_BODY_BYTES} bytes")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise InvalidInput("the client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _Reject(413, "Payload too large", f"the body is over {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _text(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value is not None else None
