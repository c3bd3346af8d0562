"""The webhook endpoints as a thin ASGI callable: the hot path, without a framework.

``POST /webhooks/payments/orders`` and ``/disputes`` are served here directly
(FIELD-NOTES: a framework costs ~25 % of the server's ceiling); every other path
goes to the Quart app (probes, metrics, schemas). Checks run cheapest first:
media type, size (from Content-Length, then while reading), signature, schema.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import trio

from ingest.processors import Processor, RequestContext
from ingest.signatures import verify
from shared.asgi_body import read_body, respond
from shared.envelope import TraceContext
from shared.errors import Unauthorized, WebhookError
from shared.logs import get_logger
from shared.messages import DisputeWebhook, OrderWebhook, decode_json, encode_json
from shared.problems import CONTENT_TYPE as PROBLEM
from shared.problems import INTERNAL_ERROR, asgi_headers, problem_for
from shared.tracing import current_traceparent

log = get_logger(__name__)
Webhook = OrderWebhook | DisputeWebhook
ROUTES: dict[str, type[Webhook]] = {"/webhooks/payments/orders": OrderWebhook,
                                    "/webhooks/payments/disputes": DisputeWebhook}
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


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

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        schema = ROUTES.get(scope.get("path", "")) if scope["type"] == "http" else None
        if schema is None:
            await self._fallback(scope, receive, send)
            return
        headers = dict(scope["headers"])
        correlation_id = headers.get(b"x-correlation-id", b"").decode("latin-1")[:128] or os.urandom(16).hex()
        status, body, extra = await self._respond(scope, receive, schema, headers, correlation_id)
        await respond(send, status, body, [(b"x-correlation-id", correlation_id.encode("latin-1")), *extra])

    async def _respond(self, scope: dict[str, Any], receive: Receive, schema: type[Webhook],
                       headers: dict[bytes, bytes], correlation_id: str
                       ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        try:
            body = await read_body(scope, receive, headers, (b"application/json",))
            _refuse_repeated_auth_headers(scope["headers"])
            verify(self._secrets, headers.get(b"webhook-id"), headers.get(b"webhook-timestamp"),
                   headers.get(b"webhook-signature"), body, self._clock())
            webhook: Webhook = decode_json(body, schema)
            context = RequestContext(dt.datetime.now(dt.UTC), correlation_id,
                                     TraceContext.from_header(_text(headers, b"traceparent")))
            current_traceparent.set(context.trace.traceparent)
            log.debug("webhook accepted for processing", correlation_id=correlation_id,
                      trace_id=context.trace.trace_id, provider_event_id=webhook.provider_event_id)
            with trio.move_on_after(self._deadline):
                accepted = await self._processor.process(webhook, context)
                return accepted.status, encode_json(accepted.body), [(b"content-type", b"application/json")]
            raise self._deadline_error()
        except WebhookError as error:
            body, status, extra = problem_for(error)
            return status, body, asgi_headers(extra)
        except Exception:  # noqa: BLE001 - the last line of defence: log it, never lose the 5xx's cause
            log.exception("unexpected error in webhook endpoint", path=scope["path"])
            return 500, INTERNAL_ERROR, [(b"content-type", PROBLEM.encode())]


AUTH_HEADERS = (b"webhook-id", b"webhook-timestamp", b"webhook-signature")


def _refuse_repeated_auth_headers(raw: list[tuple[bytes, bytes]]) -> None:
    """A repeated auth header is refused (401) rather than one of its copies picked silently:
    which copy a proxy or a framework keeps differs, and a signature must cover what we act on."""
    names = [name for name, _ in raw if name in AUTH_HEADERS]
    if len(names) != len(set(names)):
        raise Unauthorized("webhook-id, webhook-timestamp and webhook-signature may each appear only once")


def _text(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value is not None else None
