"""RFC 9457 problem details: how every HTTP error of this project looks.

``problem_for`` renders one of our errors — its ``type`` from the one error table in
``shared.errors`` — for Quart and for the thin ASGI endpoints alike (``asgi_headers``).
Errors that are not ours (a framework's 404 for an unknown route, our own 500) carry
``about:blank``: their meaning is the HTTP status itself.
"""

from __future__ import annotations

from typing import Any

import msgspec

from shared.errors import Unavailable, WebhookError, mapping_for

CONTENT_TYPE = "application/problem+json"
_MEMBERS = frozenset({"type", "title", "status", "detail", "instance", "errors"})  # no extension replaces these
_encode = msgspec.json.Encoder().encode


def problem_body(status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None,
                 problem_type: str = "about:blank", extensions: dict[str, object] | None = None) -> bytes:
    body: dict[str, Any] = {"type": problem_type, "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    body.update({name: value for name, value in (extensions or {}).items() if name not in _MEMBERS})
    return _encode(body)


def problem_for(error: WebhookError) -> tuple[bytes, int, dict[str, str]]:
    """(body, status, headers) for one of our errors; 503s say when to retry."""
    mapping = mapping_for(error)
    headers = {"Content-Type": CONTENT_TYPE}
    if isinstance(error, Unavailable):
        headers["Retry-After"] = str(error.retry_after_seconds)
    body = problem_body(mapping.http_status, error.title, error.detail, error.errors, mapping.problem_type,
                        error.extensions())
    return body, mapping.http_status, headers


def asgi_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """``problem_for``'s headers as a raw ASGI header list."""
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


INTERNAL_ERROR = problem_body(500, "Internal error", "unexpected error; it was logged")
