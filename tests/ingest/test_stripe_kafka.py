"""POST /webhooks/stripe in kafka mode, against the embedded broker: what lands on the topics, and what never does."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
import trio
from prometheus_client import REGISTRY

from shared.envelope import event_id_for
from shared.settings import Settings
from tests.ingest.conftest import read_records, record_count
from tests.stripe_requests import TEST_STRIPE_SECRET, encode, stripe_event, stripe_headers

STRIPE = "/webhooks/stripe"


async def _post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return await client.post(STRIPE, content=body, headers=headers)


async def _topics_empty(settings: Settings) -> bool:
    counts = [await trio.to_thread.run_sync(record_count, settings.kafka_bootstrap_servers, settings.topic(topic),
                                            settings.topic_partitions)
              for topic in ("orders.webhooks", "disputes.webhooks")]
    return counts == [0, 0]


async def test_a_payment_becomes_an_order_record_keyed_by_the_user(kafka_ingest: str, settings: Settings) -> None:
    event = stripe_event("payment_intent.succeeded", event_id="evt_pay_1")
    body = encode(event)
    with trio.fail_after(30):
        response = await _post(kafka_ingest, body, stripe_headers(body))
        assert response.status_code == 202, response.text
        assert response.json() == {"status": "accepted", "event_id": event_id_for("evt_pay_1")}
        (record,) = await trio.to_thread.run_sync(read_records, settings.kafka_bootstrap_servers,
                                                  settings.topic("orders.webhooks"), settings.topic_partitions, 1)
    assert record.key() == b"usr_77"
    envelope = json.loads(record.value())
    assert envelope["event_type"] == "order.payment_updated"
    assert envelope["data"] == {
        "provider_event_id": "evt_pay_1", "order_id": "ord_1001", "user_id": "usr_77", "status": "paid",
        "amount": 4999, "currency": "EUR", "occurred_at": "2025-11-20T10:00:00Z",
        "provider_payment_id": "pi_3PqZxY2eZvKYlo2C1x2y3z4w"}


async def test_a_dispute_is_keyed_by_its_payment_and_names_no_user(kafka_ingest: str, settings: Settings) -> None:
    events = [stripe_event("charge.dispute.created"), stripe_event("charge.dispute.closed", status="won")]
    with trio.fail_after(30):
        for event in events:
            body = encode(event)
            assert (await _post(kafka_ingest, body, stripe_headers(body))).status_code == 202
        records = await trio.to_thread.run_sync(read_records, settings.kafka_bootstrap_servers,
                                                settings.topic("disputes.webhooks"), settings.topic_partitions, 2)
    assert {record.key() for record in records} == {b"pi_3PqZxY2eZvKYlo2C1x2y3z4w"}
    assert len({record.partition() for record in records}) == 1  # one dispute, one partition: its order holds
    envelopes = sorted((json.loads(record.value()) for record in records), key=lambda e: e["data"]["status"])
    assert [e["data"]["status"] for e in envelopes] == ["opened", "won"]
    assert envelopes[0]["event_type"] == "dispute.updated_by_payment"
    assert envelopes[0]["metadata"]["user_id"] == ""
    assert "order_id" not in envelopes[0]["data"] and "user_id" not in envelopes[0]["data"]


def _ignored(event_type: str) -> float:
    value = REGISTRY.get_sample_value("ingest_provider_events_ignored_total",
                                      {"provider": "stripe", "event_type": event_type})
    return value or 0.0


async def test_an_unhandled_type_is_200_ignored_and_counted_by_type(kafka_ingest: str, settings: Settings) -> None:
    before = _ignored("customer.created")
    body = encode(stripe_event("customer.created"))
    with trio.fail_after(30):
        response = await _post(kafka_ingest, body, stripe_headers(body))
        assert (response.status_code, response.json()) == (200, {"status": "ignored"})
        assert _ignored("customer.created") == before + 1
        async with httpx.AsyncClient(base_url=kafka_ingest) as client:
            metrics = (await client.get("/metrics")).text
        assert 'ingest_provider_events_ignored_total{event_type="customer.created",provider="stripe"}' in metrics
        assert await _topics_empty(settings)


def _case(body: bytes, status: int, case: str, *, secret: str = TEST_STRIPE_SECRET, timestamp: int | None = None,
          signed: bytes | None = None, **header_changes: str) -> object:
    """A refused request; signed when the test runs (signed at collection, a slow suite reached it after
    the 5-minute tolerance), over ``signed`` when that differs from the body sent."""
    def headers() -> dict[str, str]:
        return {**stripe_headers(body if signed is None else signed, secret=secret, timestamp=timestamp),
                **header_changes}
    return pytest.param(body, headers, status, id=case)


PAYMENT = encode(stripe_event("payment_intent.succeeded"))
REJECTED = [
    _case(PAYMENT, 401, "unsigned", **{"stripe-signature": ""}),
    _case(PAYMENT, 401, "wrong-secret", secret="whsec_notoneofoursecretsatall"),
    _case(PAYMENT, 401, "stale", timestamp=1_000_000_000),
    _case(PAYMENT.replace(b"4999", b"1"), 401, "tampered-body", signed=PAYMENT),
    _case(encode(stripe_event("payment_intent.succeeded", metadata={"user_id": "usr_1"})), 422, "no-order-id"),
    _case(encode(stripe_event("charge.dispute.created", payment_intent=None)), 422, "dispute-without-payment"),
    _case(b"{not json", 400, "not-json"),
    _case(encode(stripe_event("payment_intent.succeeded", currency="euro")), 400, "bad-currency"),
    _case(PAYMENT, 415, "media-type", **{"content-type": "text/plain"}),
    _case(b"x" * 70_000, 413, "too-large"),
]


@pytest.mark.parametrize(("body", "headers", "status"), REJECTED)
async def test_refused_stripe_requests_put_nothing_on_the_topics(kafka_ingest: str, settings: Settings, body: bytes,
                                                                headers: Callable[[], dict[str, str]],
                                                                status: int) -> None:
    with trio.fail_after(30):
        response = await _post(kafka_ingest, body, headers())
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert await _topics_empty(settings)


async def test_unmappable_names_the_missing_field(kafka_ingest: str) -> None:
    body = encode(stripe_event("payment_intent.succeeded", metadata={"order_id": "ord_1"}))
    with trio.fail_after(30):
        response = await _post(kafka_ingest, body, stripe_headers(body))
    problem = response.json()
    assert response.status_code == 422
    assert problem["type"] == "urn:payment-webhooks:problem:unmappable-event"
    assert problem["errors"] == [{"field": "data.object.metadata.user_id", "message": "required to map this event"}]


async def test_a_repeated_stripe_signature_is_refused(kafka_ingest: str) -> None:
    headers = stripe_headers(PAYMENT)
    raw = [*headers.items(), ("stripe-signature", headers["stripe-signature"])]
    with trio.fail_after(30):
        response = await _post(kafka_ingest, PAYMENT, raw)  # type: ignore[arg-type]
    assert response.status_code == 401 and "only once" in response.json()["detail"]


async def test_without_stripe_secrets_the_endpoint_says_not_configured(settings: Settings) -> None:
    import trio_asyncio

    from ingest.service import serve_ingest

    shutdown = trio.Event()
    async with trio_asyncio.open_loop() as loop, trio.open_nursery() as nursery:
        unset = settings.replace(ingest_port=0, stripe_webhook_secrets=())
        url = (await nursery.start(serve_ingest, unset, loop, shutdown))[0]
        with trio.fail_after(30):
            response = await _post(url, PAYMENT, stripe_headers(PAYMENT))
        shutdown.set()
    assert response.status_code == 404
    assert response.json()["type"] == "urn:payment-webhooks:problem:provider-not-configured"
    assert "STRIPE_WEBHOOK_SECRETS" in response.json()["detail"]
