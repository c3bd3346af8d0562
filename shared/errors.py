"""The project's exception tree, and the one place each error is mapped outward.

    WebhookError
    ├── InvalidInput            bad body / schema            400   INVALID_ARGUMENT     DLQ schema
    ├── Unauthorized            signature / token            401   UNAUTHENTICATED      -
    ├── NotFound                order or dispute unknown     404   NOT_FOUND            DLQ not_found
    ├── InvalidTransition       state machine says no        422   FAILED_PRECONDITION  DLQ invalid_transition
    ├── UserMismatch            event's user ≠ stored user   422   FAILED_PRECONDITION  DLQ user_mismatch
    ├── Conflict                duplicate / id taken         409   ALREADY_EXISTS       (ack)
    ├── Unavailable             transient: retry later       503   UNAVAILABLE          (retry, never DLQ)
    │   ├── DatabaseUnavailable
    │   ├── BrokerUnavailable
    │   └── CircuitOpen         ingest fails fast            503 + Retry-After
    ├── BadGateway              api unreachable / 5xx        502   UNAVAILABLE          -
    └── GatewayTimeout          api too slow                 504   DEADLINE_EXCEEDED    -

Library errors are translated into these once, at the adapter that sees them
(``raise DatabaseUnavailable(...) from exc``); handlers and actors only ever see
this tree, and look up status codes and DLQ reasons in the tables below.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class WebhookError(Exception):
    """Base of every error this project raises on purpose."""

    title = "Error"

    def __init__(self, detail: str, *, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class InvalidInput(WebhookError):
    title = "Invalid request body"


class Unauthorized(WebhookError):
    title = "Unauthorized"


class NotFound(WebhookError):
    title = "Not found"


class InvalidTransition(WebhookError):
    title = "Invalid state transition"


class UserMismatch(WebhookError):
    title = "User mismatch"


class Conflict(WebhookError):
    title = "Conflict"


class Unavailable(WebhookError):
    """A dependency is down or slow; the same request may succeed later."""

    title = "Service unavailable"

    def __init__(self, detail: str, *, retry_after_seconds: int = 1) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


class DatabaseUnavailable(Unavailable):
    title = "Database unavailable"


class BrokerUnavailable(Unavailable):
    title = "Broker unavailable"


class CircuitOpen(Unavailable):
    title = "Circuit open"


class BadGateway(WebhookError):
    """The api could not be reached, or kept failing, after retries."""

    title = "Bad gateway"


class GatewayTimeout(WebhookError):
    """The api did not answer in time, after retries."""

    title = "Gateway timeout"


@dataclass(frozen=True)
class Mapping:
    """How one error class shows outside: HTTP status, gRPC status name, DLQ reason."""

    http_status: int
    grpc_status: str
    dlq_reason: str | None = field(default=None)


# Ordered most specific first; lookups walk the class's MRO.
ERROR_MAP: dict[type[WebhookError], Mapping] = {
    InvalidInput: Mapping(400, "INVALID_ARGUMENT", "schema"),
    Unauthorized: Mapping(401, "UNAUTHENTICATED"),
    NotFound: Mapping(404, "NOT_FOUND", "not_found"),
    InvalidTransition: Mapping(422, "FAILED_PRECONDITION", "invalid_transition"),
    UserMismatch: Mapping(422, "FAILED_PRECONDITION", "user_mismatch"),
    Conflict: Mapping(409, "ALREADY_EXISTS"),
    Unavailable: Mapping(503, "UNAVAILABLE"),
    BadGateway: Mapping(502, "UNAVAILABLE"),
    GatewayTimeout: Mapping(504, "DEADLINE_EXCEEDED"),
}


def mapping_for(error: WebhookError) -> Mapping:
    for cls in type(error).__mro__:
        if cls in ERROR_MAP:
            return ERROR_MAP[cls]
    raise KeyError(type(error))  # pragma: no cover - every subclass is in the tree
