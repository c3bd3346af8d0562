"""The wire schemas: provider webhooks and the internal update messages, as msgspec Structs.

msgspec validates while it decodes (types, lengths, patterns, enums, time zones)
in one pass in C, which keeps the ingest hot path thin. A failed decode becomes
``InvalidInput`` with per-field errors for the problem+json body or the DLQ record.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal, TypeVar, cast

import msgspec

from shared.errors import InvalidInput

# PostgreSQL text cannot hold NUL, and UTF-8 cannot hold lone surrogates: such a value would pass
# the rules and then fail at the database (a 500, or a poison record for the workers). Ids hold no
# control characters at all; free text may hold tabs and newlines. Python's ``$`` (msgspec's regex
# engine) also matches before a final "\n", so patterns end in ``$(?!\n)`` (in a JSON Schema's
# ECMAScript regex the lookahead is a no-op): "EUR\n" was a currency, and a 500 at char(3).
_END = r"$(?!\n)"
_ID_CHARS = r"^[^\x00-\x1f\x7f\ud800-\udfff]*" + _END
_TEXT_CHARS = r"^[^\x00\ud800-\udfff]*$"
_ID_PATTERN = re.compile(_ID_CHARS)


def is_valid_id(text: str) -> bool:
    """Whether ``text`` could be a stored order or dispute id (a lookup of any other is not found)."""
    return 1 <= len(text) <= 64 and _ID_PATTERN.match(text) is not None


ProviderEventId = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=_ID_CHARS)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_ID_CHARS)]
Amount = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1, description="minor units (cents)")]
_CURRENCY = r"^[A-Z]{3}" + _END
Currency = Annotated[str, msgspec.Meta(pattern=_CURRENCY, description="ISO 4217")]
Timestamp = Annotated[dt.datetime, msgspec.Meta(tz=True, description="RFC 3339 with a zone")]
Reason = Annotated[str, msgspec.Meta(max_length=255, pattern=_TEXT_CHARS)]
OrderStatus = Literal["pending", "authorized", "paid", "failed", "canceled", "refunded"]
DisputeStatus = Literal["opened", "evidence_required", "evidence_submitted", "won", "lost"]


def _check_occurred_at(occurred_at: dt.datetime) -> None:
    """A time with a zone at the edge of the calendar (0001-01-01T00:00+14:00) has no UTC value:
    PostgreSQL's driver refuses it, so it is refused here, as bad input (400 / DLQ ``schema``)."""
    try:
        occurred_at.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("occurred_at is outside the range of representable times - at `$.occurred_at`") from None


class OrderWebhook(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /webhooks/payments/orders``: a status change of an order's payment."""

    provider_event_id: ProviderEventId
    order_id: Id
    user_id: Id
    status: OrderStatus
    amount: Amount
    currency: Currency
    occurred_at: Timestamp

    def __post_init__(self) -> None:
        _check_occurred_at(self.occurred_at)


class DisputeWebhook(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /webhooks/payments/disputes``: a chargeback opened or moved on."""

    provider_event_id: ProviderEventId
    dispute_id: Id
    order_id: Id
    user_id: Id
    status: DisputeStatus
    reason: Reason
    amount: Amount
    currency: Currency
    occurred_at: Timestamp

    def __post_init__(self) -> None:
        _check_occurred_at(self.occurred_at)


PaymentId = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=_ID_CHARS,
                                        description="the provider's id of the payment (Stripe: PaymentIntent)")]


class LinkedOrderWebhook(OrderWebhook, frozen=True, kw_only=True):
    """An order update that also names the provider's payment (Stripe: the PaymentIntent id).

    Made by provider mappers only, never accepted from the native endpoint: once it is applied,
    the payment is linked to its order (``payment_links``), and the provider's disputes, which
    know only the payment, find their order through that link."""

    provider_payment_id: PaymentId | None = None


class PaymentDisputeWebhook(msgspec.Struct, frozen=True, kw_only=True):
    """A dispute that names only the provider's payment it disputes (Stripe), not our order or user:
    the order and user come from the payment's link when it is applied (workers, api)."""

    provider_event_id: ProviderEventId
    dispute_id: Id
    provider_payment_id: PaymentId
    status: DisputeStatus
    reason: Reason
    amount: Amount
    currency: Currency
    occurred_at: Timestamp

    def __post_init__(self) -> None:
        _check_occurred_at(self.occurred_at)


EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=_ID_CHARS)]
CorrelationId = Annotated[str, msgspec.Meta(max_length=128, pattern=_ID_CHARS)]


class OrderUpdate(OrderWebhook, frozen=True, kw_only=True):
    """What ingest hands on for an order webhook (HTTP body, gRPC message, Kafka ``data``)."""

    event_id: EventId
    received_at: Timestamp
    correlation_id: CorrelationId = ""
    provider_payment_id: PaymentId | None = None  # set from a ``LinkedOrderWebhook``: link it once applied


class DisputeUpdate(DisputeWebhook, frozen=True, kw_only=True):
    """What ingest hands on for a dispute webhook (same extra fields as ``OrderUpdate``)."""

    event_id: EventId
    received_at: Timestamp
    correlation_id: CorrelationId = ""


class PaymentDisputeUpdate(PaymentDisputeWebhook, frozen=True, kw_only=True):
    """What ingest hands on for a ``PaymentDisputeWebhook``; ``resolved`` once its payment's link is known."""

    event_id: EventId
    received_at: Timestamp
    correlation_id: CorrelationId = ""

    def resolved(self, order_id: str, user_id: str) -> DisputeUpdate:
        """The dispute update of the linked order and user, applied like any other."""
        fields = {name: getattr(self, name) for name in self.__struct_fields__ if name != "provider_payment_id"}
        return DisputeUpdate(**fields, order_id=order_id, user_id=user_id)


Update = OrderUpdate | DisputeUpdate
InboundUpdate = Update | PaymentDisputeUpdate  # what reaches the api or the workers, before links are resolved
T = TypeVar("T")

_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING = re.compile(r"missing required field `([^`]+)`")


# What decoding untrusted bytes can raise: msgspec's errors, and RecursionError for a document
# nested deeper than msgspec follows (``[[[…]]]`` fits in a few KiB) — bad input, not a crash.
DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, RecursionError)


def validation_error(exc: msgspec.ValidationError | msgspec.DecodeError | RecursionError) -> InvalidInput:
    """One ``InvalidInput`` naming the offending field, from msgspec's message."""
    if isinstance(exc, RecursionError):
        return InvalidInput("body is nested too deeply", errors=[{"field": "$", "message": "nested too deeply"}])
    message = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        path = _PATH.search(message)
        missing = _MISSING.search(message)
        field = path[1] if path else (missing[1] if missing else "")
        detail = _PATH.sub("", message).replace(f"Expected `str` matching regex {_ID_CHARS!r}",
                                                "must not contain control characters")
        detail = detail.replace(f"Expected `str` matching regex {_TEXT_CHARS!r}", "must not contain NUL characters")
        detail = detail.replace(f"Expected `str` matching regex {_CURRENCY!r}",
                                "must be 3 upper-case letters (ISO 4217)")
        return InvalidInput(f"invalid field '{field or '$'}': {detail}",
                            errors=[{"field": field or "$", "message": detail}])
    return InvalidInput("body is not valid JSON", errors=[{"field": "$", "message": message}])


_decoders: dict[type, msgspec.json.Decoder[Any]] = {}


def decode_json(body: bytes, schema: type[T]) -> T:
    """Decode and validate ``body`` as ``schema`` or raise ``InvalidInput``."""
    decoder = _decoders.get(schema) or _decoders.setdefault(schema, msgspec.json.Decoder(schema))
    try:
        return cast(T, decoder.decode(body))
    except DECODE_ERRORS as exc:
        raise validation_error(exc) from None


def convert(data: dict[str, Any], schema: type[T]) -> T:
    """Validate already-decoded fields (e.g. from Protobuf) against ``schema``."""
    try:
        return msgspec.convert(data, schema)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None


encode_json = msgspec.json.Encoder().encode


def json_schema(schema: type) -> dict[str, Any]:
    return msgspec.json.schema(schema)
