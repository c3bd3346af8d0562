"""Stripe events onto our updates: the one table, and the reading of Stripe's objects it needs.

Pure (no I/O): ingest maps every verified Stripe event through ``map_stripe_event``;
the README's "Providers" section documents the same table. A row is chosen by the
event's type and, where the type alone does not decide, a fact of its object (the
dispute's status; whether a charge is fully refunded). A type or fact without a row
is ``Ignored``: Stripe gets 200 and stops retrying.

- PaymentIntent events (and ``charge.refunded``) become order updates. ``order_id`` and
  ``user_id`` come from the object's ``metadata`` — the PaymentIntent's, resp. the
  Charge's (Stripe copies a PaymentIntent's metadata onto the charges it creates) — and
  they carry the PaymentIntent id, so that the order is linked to its payment once applied.
- Dispute events know only the PaymentIntent (and charge) they dispute: they become
  ``PaymentDisputeWebhook``s, tied to their order through that link where they are applied.
- A handled event without what its row needs raises ``UnmappableEvent`` (422) naming the field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import msgspec

from shared.errors import InvalidInput, UnmappableEvent
from shared.messages import LinkedOrderWebhook, PaymentDisputeWebhook, convert, decode_json

Kind = Literal["order", "dispute"]
T = TypeVar("T")
# (event type, the deciding fact of its object or None) -> (what it becomes, our status)
STRIPE_EVENTS: Mapping[tuple[str, str | None], tuple[Kind, str]] = {
    ("payment_intent.processing", None): ("order", "pending"),
    ("payment_intent.amount_capturable_updated", None): ("order", "authorized"),
    ("payment_intent.succeeded", None): ("order", "paid"),
    ("payment_intent.canceled", None): ("order", "canceled"),
    ("charge.refunded", "full"): ("order", "refunded"),
    ("charge.dispute.created", None): ("dispute", "opened"),
    ("charge.dispute.updated", "needs_response"): ("dispute", "evidence_required"),
    ("charge.dispute.updated", "warning_needs_response"): ("dispute", "evidence_required"),
    ("charge.dispute.updated", "under_review"): ("dispute", "evidence_submitted"),
    ("charge.dispute.updated", "warning_under_review"): ("dispute", "evidence_submitted"),
    ("charge.dispute.closed", "won"): ("dispute", "won"),
    ("charge.dispute.closed", "lost"): ("dispute", "lost"),
}
# Not a row: ``payment_intent.payment_failed``. At Stripe it is not final — the PaymentIntent goes
# back to ``requires_payment_method`` and the customer may pay with another card — while our
# ``failed`` is terminal (SPEC §4): mapped to it, the later ``payment_intent.succeeded`` would be
# refused (422, retried by Stripe for days, the money taken). It is acknowledged and counted as
# ignored; an intent given up for good ends with ``payment_intent.canceled``.
# Types whose row depends on a fact of the object (the others are decided by the type alone).
_DECIDED_BY_FACT = frozenset(event_type for event_type, fact in STRIPE_EVENTS if fact is not None)
HANDLED_TYPES = frozenset(event_type for event_type, _ in STRIPE_EVENTS)


class _Data(msgspec.Struct, frozen=True):
    object: msgspec.Raw  # read by the row's object type only once the type is known to be handled


class StripeEvent(msgspec.Struct, frozen=True):
    """The envelope of every Stripe event (unknown fields, e.g. ``api_version``, are ignored)."""

    id: str
    type: str
    created: int
    data: _Data


class PaymentIntent(msgspec.Struct, frozen=True):
    id: str
    amount: int
    currency: str
    metadata: dict[str, str] = {}


class Charge(msgspec.Struct, frozen=True):
    id: str
    amount: int
    amount_refunded: int
    refunded: bool
    currency: str
    payment_intent: str | None = None
    metadata: dict[str, str] = {}


class Dispute(msgspec.Struct, frozen=True):
    id: str
    amount: int
    currency: str
    status: str
    reason: str
    charge: str
    payment_intent: str | None = None


@dataclass(frozen=True)
class Ignored:
    """A verified event we do not act on (answered 200 ``ignored``, counted by type)."""

    event_type: str


Mapped = LinkedOrderWebhook | PaymentDisputeWebhook | Ignored


def map_stripe_event(body: bytes) -> Mapped:
    """The update a verified Stripe event body stands for, or ``Ignored``.

    Raises ``InvalidInput`` (400) for a body that is not a Stripe event, ``UnmappableEvent``
    (422) for a handled event without the metadata or payment its row needs."""
    event = decode_json(body, StripeEvent)
    if event.type not in HANDLED_TYPES:
        return Ignored(event.type)
    if event.type.startswith("charge.dispute."):
        return _dispute(event, _object(event, Dispute))
    if event.type == "charge.refunded":
        return _refund(event, _object(event, Charge))
    return _payment(event, _object(event, PaymentIntent))


def _row(event: StripeEvent, fact: str | None) -> tuple[Kind, str] | None:
    return STRIPE_EVENTS.get((event.type, fact if event.type in _DECIDED_BY_FACT else None))


def _payment(event: StripeEvent, intent: PaymentIntent) -> Mapped:
    (_, status) = STRIPE_EVENTS[(event.type, None)]
    return _order_update(event, status, intent.metadata, intent.id, intent.amount, intent.currency,
                         "data.object.metadata")


def _refund(event: StripeEvent, charge: Charge) -> Mapped:
    full = charge.refunded  # Stripe: true only once fully refunded (a partly captured charge refunds less)
    row = _row(event, "full" if full else "partial")
    if row is None:  # a partial refund changes no order status of ours
        return Ignored(event.type)
    if not charge.payment_intent:
        raise _missing("data.object.payment_intent")
    return _order_update(event, row[1], charge.metadata, charge.payment_intent, charge.amount, charge.currency,
                         "data.object.metadata")


def _dispute(event: StripeEvent, dispute: Dispute) -> Mapped:
    row = _row(event, dispute.status)
    if row is None:  # e.g. charge.dispute.closed as warning_closed: an inquiry that ended, no outcome of ours
        return Ignored(event.type)
    if not dispute.payment_intent:
        raise _missing("data.object.payment_intent")
    return _convert(PaymentDisputeWebhook, {
        "provider_event_id": event.id, "dispute_id": dispute.id, "provider_payment_id": dispute.payment_intent,
        "status": row[1], "reason": dispute.reason, "amount": dispute.amount,
        "currency": dispute.currency.upper(), "occurred_at": _created(event)})


def _order_update(event: StripeEvent, status: str, metadata: Mapping[str, str], payment_id: str, amount: int,
                  currency: str, where: str) -> LinkedOrderWebhook:
    for key in ("order_id", "user_id"):
        if not metadata.get(key):
            raise _missing(f"{where}.{key}")
    return _convert(LinkedOrderWebhook, {
        "provider_event_id": event.id, "order_id": metadata["order_id"], "user_id": metadata["user_id"],
        "status": status, "amount": amount, "currency": currency.upper(), "occurred_at": _created(event),
        "provider_payment_id": payment_id})


def _object(event: StripeEvent, schema: type[T]) -> T:
    try:
        return decode_json(event.data.object, schema)
    except InvalidInput as error:
        raise _nested(error, "data.object") from None


def _convert(schema: type[T], fields: dict[str, Any]) -> T:
    """Our rules (lengths, characters, ISO currency) over what Stripe sent; a field is named by its
    place in our update, which the detail makes plain."""
    try:
        return convert(fields, schema)
    except InvalidInput as error:
        raise _nested(error, "mapped update") from None


def _created(event: StripeEvent) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(event.created, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidInput("invalid field 'created': not a unix time",
                           errors=[{"field": "created", "message": "not a unix time"}]) from None


def _nested(error: InvalidInput, prefix: str) -> InvalidInput:
    errors = [{**item, "field": f"{prefix}.{item['field']}".rstrip(".$")} for item in error.errors]
    return InvalidInput(f"{prefix}: {error.detail}", errors=errors)


def _missing(field: str) -> UnmappableEvent:
    return UnmappableEvent(f"the event has no {field}, which its mapping needs",
                           errors=[{"field": field, "message": "required to map this event"}])
