"""The project's exception tree, and the one place each error is mapped outward.

    WebhookError
    ├── InvalidInput            bad body / schema            400   INVALID_ARGUMENT     DLQ schema
    ├── Unauthorized            signature / token            401   UNAUTHENTICATED      -
    ├── MethodNotAllowed        not a POST                   405   UNIMPLEMENTED        -
    ├── PayloadTooLarge         body over the limit          413   RESOURCE_EXHAUSTED   -
    ├── UnsupportedMediaType    wrong Content-Type           415   INVALID_ARGUMENT     -
    ├── NotFound                order or dispute unknown     404   NOT_FOUND            DLQ not_found
    ├── InvalidTransition       state machine says no        422   FAILED_PRECONDITION  DLQ invalid_transition
    ├── UserMismatch            event's user ≠ stored user   422   FAILED_PRECONDITION  DLQ user_mismatch
    ├── UnmappableEvent         provider event lacks a field 422   FAILED_PRECONDITION  - (ingest only)
    ├── ProviderNotConfigured   no secrets for the provider  404   NOT_FOUND            - (ingest only)
    ├── Conflict                duplicate / id taken         409   ALREADY_EXISTS       (ack)
    ├── Unavailable             transient: retry later       503   UNAVAILABLE          (retry, never DLQ)
    │   ├── DatabaseUnavailable
    │   ├── BrokerUnavailable
    │   └── CircuitOpen         ingest fails fast            503 + Retry-After
    ├── BadGateway              api unreachable / 5xx        502   UNAVAILABLE          -
    └── GatewayTimeout          api too slow                 504   DEADLINE_EXCEEDED    -

Library errors are translated into these once, at the adapter that sees them
(``raise DatabaseUnavailable(...) from exc``); handlers and actors only ever see
this tree, and look up status codes, problem types and DLQ reasons in the one
table below — in both directions: ingest's clients read the api's answers back
into this tree by problem ``type`` (HTTP) or status code (gRPC) through it.
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

    def extensions(self) -> dict[str, object]:
        """RFC 9457 extension members of this error's problem, beside type/title/status/detail/errors."""
        return {}


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


class UnmappableEvent(WebhookError):
    """A provider's event of a handled type without what the mapping needs (e.g. Stripe metadata):
    the provider's dashboard shows the failed delivery; nothing is written."""

    title = "Unmappable provider event"


class ProviderNotConfigured(WebhookError):
    """The provider's endpoint has no signing secret here: like a route that is not served."""

    title = "Provider not configured"


class Conflict(WebhookError):
    title = "Conflict"


class MethodNotAllowed(WebhookError):
    title = "Method not allowed"


class PayloadTooLarge(WebhookError):
    title = "Payload too large"


class UnsupportedMediaType(WebhookError):
    title = "Unsupported media type"


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
    """``api_called`` (a problem extension member): whether this webhook's update had been sent to
    the api, and failed, before the circuit refused its retry — then the answer waited on the
    failing api. False says only that nothing was sent: a webhook queued behind calls in flight
    may still have waited for them before its first attempt was refused."""

    title = "Circuit open"

    def __init__(self, detail: str, *, retry_after_seconds: int = 1, api_called: bool = False) -> None:
        super().__init__(detail, retry_after_seconds=retry_after_seconds)
        self.api_called = api_called

    def extensions(self) -> dict[str, object]:
        return {"api_called": self.api_called}


class BadGateway(WebhookError):
    """The api could not be reached, or kept failing, after retries."""

    title = "Bad gateway"


class GatewayTimeout(WebhookError):
    """The api did not answer in time, after retries."""

    title = "Gateway timeout"


PROBLEM_TYPE_PREFIX = "urn:payment-webhooks:problem:"
PROBLEM_TYPE_METADATA = "problem-type"  # gRPC trailing metadata: the problem type, as HTTP's body carries it


@dataclass(frozen=True)
class Mapping:
    """How one error class shows outside: HTTP status, problem type, gRPC status name, DLQ reason."""

    http_status: int
    problem: str  # the RFC 9457 ``type``, after PROBLEM_TYPE_PREFIX
    grpc_status: str
    dlq_reason: str | None = field(default=None)  # set for rejections of the event itself

    @property
    def problem_type(self) -> str:
        return PROBLEM_TYPE_PREFIX + self.problem


# Ordered most specific first (a reverse lookup by gRPC status takes the first match);
# lookups by class walk its MRO.
ERROR_MAP: dict[type[WebhookError], Mapping] = {
    InvalidInput: Mapping(400, "invalid-input", "INVALID_ARGUMENT", "schema"),
    Unauthorized: Mapping(401, "unauthorized", "UNAUTHENTICATED"),
    NotFound: Mapping(404, "not-found", "NOT_FOUND", "not_found"),
    InvalidTransition: Mapping(422, "invalid-transition", "FAILED_PRECONDITION", "invalid_transition"),
    UserMismatch: Mapping(422, "user-mismatch", "FAILED_PRECONDITION", "user_mismatch"),
    Conflict: Mapping(409, "conflict", "ALREADY_EXISTS"),
    UnmappableEvent: Mapping(422, "unmappable-event", "FAILED_PRECONDITION"),
    ProviderNotConfigured: Mapping(404, "provider-not-configured", "NOT_FOUND"),
    MethodNotAllowed: Mapping(405, "method-not-allowed", "UNIMPLEMENTED"),
    PayloadTooLarge: Mapping(413, "payload-too-large", "RESOURCE_EXHAUSTED"),
    UnsupportedMediaType: Mapping(415, "unsupported-media-type", "INVALID_ARGUMENT"),
    DatabaseUnavailable: Mapping(503, "database-unavailable", "UNAVAILABLE"),
    BrokerUnavailable: Mapping(503, "broker-unavailable", "UNAVAILABLE"),
    CircuitOpen: Mapping(503, "circuit-open", "UNAVAILABLE"),
    Unavailable: Mapping(503, "unavailable", "UNAVAILABLE"),
    BadGateway: Mapping(502, "bad-gateway", "UNAVAILABLE"),
    GatewayTimeout: Mapping(504, "gateway-timeout", "DEADLINE_EXCEEDED"),
}
_BY_PROBLEM_TYPE = {mapping.problem_type: error for error, mapping in ERROR_MAP.items()}


def mapping_for(error: WebhookError) -> Mapping:
    for cls in type(error).__mro__:
        if cls in ERROR_MAP:
            return ERROR_MAP[cls]
    raise KeyError(type(error))  # pragma: no cover - every subclass is in the tree


def error_for_problem_type(problem_type: object) -> type[WebhookError] | None:
    """The error class an RFC 9457 ``type`` of ours names, or None (not ours, or not a string)."""
    return _BY_PROBLEM_TYPE.get(problem_type) if isinstance(problem_type, str) else None


def error_for_grpc_status(name: str) -> type[WebhookError] | None:
    """The first error class of the table answered with this gRPC status (FAILED_PRECONDITION: 422)."""
    return next((error for error, mapping in ERROR_MAP.items() if mapping.grpc_status == name), None)


def rejects_the_event(error: type[WebhookError]) -> bool:
    """Whether the api's answer is about the event itself (404, 422, 400): final, never retried."""
    return ERROR_MAP[error].dlq_reason is not None
