"""The webhook endpoints as a thin ASGI callable: the hot path, without a framework.

``POST /webhooks/payments/orders``, ``/disputes`` and ``/webhooks/stripe`` are served here
directly (FIELD-NOTES: a framework costs ~25 % of the server's ceiling); every other path
goes to the Quart app (probes, metrics, schemas). Each route is one ``Provider``
(``ingest/providers/``). Checks run cheapest first: media type, size (from
Content-Length, then while reading), the provider's signature, then its mapping; an
event the provider sends but we do not act on is answered 200 ``ignored``.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from ingest.processors import Processor, RequestContext
from ingest.providers.provider import Ignored, Provider
from shared.asgi_body import read_body, respond
from shared.envelope import TraceContext
from shared.errors import Unauthorized, WebhookError
from shared.logs import get_logger
from shared.messages import encode_json
from shared.problems import CONTENT_TYPE as PROBLEM
from shared.problems import INTERNAL_ERROR, asgi_headers, problem_for
from shared.tracing import current_traceparent

log = get_logger(__name__)
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


class WebhookEndpoint:
    def __init__(self, processor: Processor, routes: Mapping[str, Provider], fallback: ASGIApp, *,
                 deadline_seconds: float, deadline_error: Callable[[], WebhookError],
                 clock: Callable[[], float] = time.time) -> None:
        self._processor = processor
        self._routes = dict(routes)
        self._fallback = fallback
        self._deadline = deadline_seconds
        self._deadline_error = deadline_error  # what running out of time means in this mode
        self._clock = clock

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        provider = self._routes.get(scope.get("path", "")) if scope["type"] == "http" else None
        if provider is None:
            await self._fallback(scope, receive, send)
            return
        headers = dict(scope["headers"])
        correlation_id = headers.get(b"x-correlation-id", b"").decode("latin-1")[:128] or os.urandom(16).hex()
        status, body, extra = await self._respond(scope, receive, provider, headers, correlation_id)
        await respond(send, status, body, [(b"x-correlation-id", correlation_id.encode("latin-1")), *extra])

    async def _respond(self, scope: dict[str, Any], receive: Receive, provider: Provider,
                       headers: dict[bytes, bytes], correlation_id: str
                       ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        try:
            body = await read_body(scope, receive, headers, (b"application/json",))
            _refuse_repeated_auth_headers(scope["headers"], provider.auth_headers)
            provider.verify(headers, body, self._clock())
            webhook = provider.map(body)
            if isinstance(webhook, Ignored):
                log.debug("provider event ignored", provider=provider.name, event_type=webhook.event_type,
                          correlation_id=correlation_id)
                return 200, IGNORED, [(b"content-type", b"application/json")]
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


IGNORED = encode_json({"status": "ignored"})


def _refuse_repeated_auth_headers(raw: list[tuple[bytes, bytes]], auth_headers: tuple[bytes, ...]) -> None:
    """A repeated auth header is refused (401) rather than one of its copies picked silently:
    which copy a proxy or a framework keeps differs, and a signature must cover what we act on."""
    names = [name for name, _ in raw if name in auth_headers]
    if len(names) != len(set(names)):
        raise Unauthorized(f"{', '.join(n.decode() for n in auth_headers)} may each appear only once")


def _text(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value is not None else None
