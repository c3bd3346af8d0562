"""The request's trace context, carried to outgoing calls without threading it through every signature.

ingest sets it per webhook request (a trio task has its own context); the api
clients read it to send ``traceparent`` over HTTP and gRPC. Kafka records carry
it in their headers (``shared.envelope.record_headers``).
"""

from __future__ import annotations

from contextvars import ContextVar

current_traceparent: ContextVar[str | None] = ContextVar("current_traceparent", default=None)


def trace_id(traceparent: str | None) -> str | None:
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None
