"""The Stripe table, row by row, over full event payloads shaped like Stripe's published fixtures."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.errors import InvalidInput, UnmappableEvent
from shared.messages import LinkedOrderWebhook, PaymentDisputeWebhook
from shared.stripe_events import STRIPE_EVENTS, Ignored, map_stripe_event
from tests.stripe_requests import encode, stripe_event

PI = "pi_3PqZxY2eZvKYlo2C1x2y3z4w"
CREATED = dt.datetime(2025, 11, 20, 10, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("event_type", "status"), [
    ("payment_intent.processing", "pending"),
    ("payment_intent.amount_capturable_updated", "authorized"),
    ("payment_intent.succeeded", "paid"),
    ("payment_intent.canceled", "canceled"),
    ("charge.refunded", "refunded"),
])
def test_payment_events_become_order_updates_from_the_metadata(event_type: str, status: str) -> None:
    event = stripe_event(event_type, event_id="evt_1", created=int(CREATED.timestamp()))
    mapped = map_stripe_event(encode(event))
    source = event["data"]["object"]
    assert mapped == LinkedOrderWebhook(
        provider_event_id="evt_1", order_id=source["metadata"]["order_id"], user_id=source["metadata"]["user_id"],
        status=status, amount=source["amount"], currency=source["currency"].upper(), occurred_at=CREATED,  # type: ignore[arg-type]
        provider_payment_id=source.get("payment_intent") or source["id"])


def test_a_refund_carries_the_payment_intent_it_refunds() -> None:
    mapped = map_stripe_event(encode(stripe_event("charge.refunded")))
    assert isinstance(mapped, LinkedOrderWebhook) and mapped.provider_payment_id == PI


@pytest.mark.parametrize(("event_type", "dispute_status", "status"), [
    ("charge.dispute.created", "needs_response", "opened"),
    ("charge.dispute.created", "warning_needs_response", "opened"),
    ("charge.dispute.updated", "needs_response", "evidence_required"),
    ("charge.dispute.updated", "warning_needs_response", "evidence_required"),
    ("charge.dispute.updated", "under_review", "evidence_submitted"),
    ("charge.dispute.updated", "warning_under_review", "evidence_submitted"),
    ("charge.dispute.closed", "won", "won"),
    ("charge.dispute.closed", "lost", "lost"),
])
def test_dispute_events_become_dispute_updates_of_the_payment(event_type: str, dispute_status: str,
                                                             status: str) -> None:
    event = stripe_event(event_type, event_id="evt_d", created=int(CREATED.timestamp()), status=dispute_status)
    assert map_stripe_event(encode(event)) == PaymentDisputeWebhook(
        provider_event_id="evt_d", dispute_id="dp_1PqZzb2eZvKYlo2C7a8b9c0d", provider_payment_id=PI,
        status=status, reason="fraudulent", amount=4999, currency="EUR", occurred_at=CREATED)  # type: ignore[arg-type]


@pytest.mark.parametrize(("event_type", "fields"), [
    ("customer.created", {}),
    ("charge.refunded", {"amount_refunded": 1000, "refunded": False}),  # partial: no status of ours
    ("payment_intent.payment_failed", {}),  # not final at Stripe: another card may still pay
    ("charge.dispute.updated", {"status": "won"}),  # only closing decides an outcome
    ("charge.dispute.closed", {"status": "warning_closed"}),  # an inquiry that ended
])
def test_events_without_a_row_are_ignored(event_type: str, fields: dict[str, object]) -> None:
    assert map_stripe_event(encode(stripe_event(event_type, **fields))) == Ignored(event_type)


def test_an_ignored_type_is_not_read_beyond_its_envelope() -> None:
    event = {"id": "evt_x", "type": "invoice.paid", "created": 1, "data": {"object": {"amount": "not a number"}}}
    assert map_stripe_event(encode(event)) == Ignored("invoice.paid")


@pytest.mark.parametrize(("event_type", "fields", "missing"), [
    ("payment_intent.succeeded", {"metadata": {"user_id": "usr_1"}}, "data.object.metadata.order_id"),
    ("payment_intent.succeeded", {"metadata": {"order_id": "ord_1"}}, "data.object.metadata.user_id"),
    ("payment_intent.canceled", {"metadata": {}}, "data.object.metadata.order_id"),
    ("charge.refunded", {"metadata": {"order_id": "ord_1", "user_id": ""}}, "data.object.metadata.user_id"),
    ("charge.refunded", {"payment_intent": None}, "data.object.payment_intent"),
    ("charge.dispute.created", {"payment_intent": None}, "data.object.payment_intent"),
])
def test_a_handled_event_without_what_its_row_needs_is_unmappable(event_type: str, fields: dict[str, object],
                                                                  missing: str) -> None:
    with pytest.raises(UnmappableEvent) as raised:
        map_stripe_event(encode(stripe_event(event_type, **fields)))
    assert raised.value.errors == [{"field": missing, "message": "required to map this event"}]
    assert missing in raised.value.detail


@pytest.mark.parametrize(("body", "field"), [
    (b"not json", "$"),
    (b'{"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {}}}', "created"),
    (encode(stripe_event("payment_intent.succeeded", amount="49.99")), "data.object.amount"),
    (encode(stripe_event("payment_intent.succeeded", amount=-1)), "mapped update.amount"),
    (encode(stripe_event("payment_intent.succeeded", currency="euro")), "mapped update.currency"),
    (encode(stripe_event("payment_intent.succeeded", metadata={"order_id": "o\n", "user_id": "u"})),
     "mapped update.order_id"),
    (encode(stripe_event("payment_intent.succeeded", created=10**12)), "created"),
])
def test_a_body_that_is_no_valid_stripe_event_is_invalid_input(body: bytes, field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        map_stripe_event(body)
    assert [error["field"] for error in raised.value.errors] == [field]


def test_the_table_s_statuses_exist_in_the_domain() -> None:
    from shared.domain import DISPUTE_STATUSES, ORDER_STATUSES

    for kind, status in STRIPE_EVENTS.values():
        assert status in (ORDER_STATUSES if kind == "order" else DISPUTE_STATUSES)


def test_a_fully_refunded_charge_that_was_partly_captured_refunds_the_order() -> None:
    """Stripe's ``refunded`` is the whole truth: a charge captured for less than its amount is fully
    refunded with ``amount_refunded < amount``."""
    event = stripe_event("charge.refunded", amount=5000, amount_captured=3000, amount_refunded=3000, refunded=True)
    mapped = map_stripe_event(encode(event))
    assert isinstance(mapped, LinkedOrderWebhook) and mapped.status == "refunded"


def test_a_declined_card_then_another_that_pays_leaves_the_order_paid() -> None:
    """The mapping, then the domain: a decline must not end the order before Stripe's retry pays."""
    declined = map_stripe_event(encode(stripe_event("payment_intent.payment_failed")))
    paid = map_stripe_event(encode(stripe_event("payment_intent.succeeded")))
    assert isinstance(declined, Ignored)
    assert isinstance(paid, LinkedOrderWebhook) and paid.status == "paid"
