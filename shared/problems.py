"""RFC 9457 problem details: how every HTTP error of this project looks."""

from __future__ import annotations

from typing import Any

import msgspec

from shared.errors import Unavailable, WebhookError, mapping_for

CONTENT_TYPE = "application/problem+json"
_encode = msgspec.json.Encoder().encode


def problem_body(status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None) -> bytes:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return _encode(body)


def problem_for(error: WebhookError) -> tuple[bytes, int, dict[str, str]]:
    """(body, status, headers) for one of our errors; 503s say when to retry."""
    status = mapping_for(error).http_status
    headers = {"Content-Type": CONTENT_TYPE}
    if isinstance(error, Unavailable):
        headers["Retry-After"] = str(error.retry_after_seconds)
    return problem_body(status, error.title, error.detail, error.errors), status, headers
