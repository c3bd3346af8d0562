"""Kafka mode against the embedded broker: what lands on the topic, and what never does."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
import trio

from shared.envelope import event_id_for
from shared.settings import Settings
from tests.ingest.conftest import read_records, record_count
from tests.webhook_requests import dispute_webhook, encode, order_webhook, signed_headers


async def _post(url: str, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return await client.post(path, content=body, headers=headers)


async def test_an_order_webhook_becomes_one_enveloped_record(kafka_ingest: str, settings: Settings) -> None:
    payload = order_webhook(user_id="usr_42")
    body = encode(payload)
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers = {**signed_headers(body), "traceparent": trace, "x-correlation-id": "corr-123"}
    with trio.fail_after(30):
        response = await _post(kafka_ingest, "/webhooks/payments/orders", body, headers)
        assert response.status_code == 202, response.text
        assert response.json() == {"status": "accepted", "event_id": event_id_for(payload["provider_event_id"])}
        topic = settings.topic("orders.webhooks")
        (record,) = await trio.to_thread.run_sync(read_records, settings.kafka_bootstrap_servers, topic,
                                                  settings.topic_partitions, 1)
    assert record.key() == b"usr_42"
    headers = dict(record.headers())
    assert headers["event_type"] == b"order.payment_updated"
    assert headers["content-type"] == b"application/json"
    assert headers["traceparent"].decode().startswith("00-0af7651916cd43dd8448eb211c80319c-")
    envelope = json.loads(record.value())
    assert envelope["event_id"] == response.json()["event_id"]
    assert (envelope["event_type"], envelope["event_version"], envelope["source"]) == (
        "order.payment_updated", 1, "payment-provider")
    assert envelope["correlation_id"] == "corr-123"
    assert envelope["metadata"] == {"user_id": "usr_42", "trace_id": "0af7651916cd43dd8448eb211c80319c"}
    assert envelope["data"] == payload
    assert envelope["occurred_at"] == "2026-11-20T10:00:00+01:00" and envelope["received_at"].endswith("Z")


async def test_a_non_ascii_webhook_id_is_verified_as_the_octets_signed(kafka_ingest: str) -> None:
    body = encode(order_webhook())
    headers = signed_headers(body, webhook_id="msg_zürich_東京")
    raw = [(name, value.encode()) for name, value in headers.items()]  # UTF-8 octets on the wire
    with trio.fail_after(30):
        response = await _post(kafka_ingest, "/webhooks/payments/orders", body, raw)  # type: ignore[arg-type]
    assert response.status_code == 202, response.text


async def test_a_repeated_auth_header_is_refused(kafka_ingest: str) -> None:
    body = encode(order_webhook())
    headers = signed_headers(body)
    raw = [*headers.items(), ("webhook-signature", headers["webhook-signature"])]
    with trio.fail_after(30):
        response = await _post(kafka_ingest, "/webhooks/payments/orders", body, raw)  # type: ignore[arg-type]
    assert response.status_code == 401 and "only once" in response.json()["detail"]


async def test_a_provider_retry_carries_the_same_event_id(kafka_ingest: str, settings: Settings) -> None:
    payload = dispute_webhook()
    body = encode(payload)
    with trio.fail_after(30):
        first = await _post(kafka_ingest, "/webhooks/payments/disputes", body, signed_headers(body))
        again = await _post(kafka_ingest, "/webhooks/payments/disputes", body, signed_headers(body))
        records = await trio.to_thread.run_sync(read_records, settings.kafka_bootstrap_servers,
                                                settings.topic("disputes.webhooks"), settings.topic_partitions, 2)
    assert first.status_code == again.status_code == 202
    ids = {json.loads(record.value())["event_id"] for record in records}
    assert ids == {first.json()["event_id"]} == {again.json()["event_id"]}


def _case(path: str, body: bytes, status: int, case: str, *, secret: bytes | None = None,
          **header_changes: str) -> object:
    """A refused request, signed when the test runs: signed at collection, a slow suite reached it after
    the timestamp tolerance and every case answered 401."""
    def headers() -> dict[str, str]:
        signed = signed_headers(body) if secret is None else signed_headers(body, secret=secret)
        return {**signed, **header_changes}
    return pytest.param(path, body, headers, status, id=case)


ORDERS, DISPUTES = "/webhooks/payments/orders", "/webhooks/payments/disputes"
REJECTED = [
    pytest.param(ORDERS, encode(order_webhook()), lambda: {"content-type": "application/json"}, 401, id="unsigned"),
    _case(ORDERS, b"{}", 401, "wrong-secret", secret=b"wrong-secret-0123456789"),
    _case(ORDERS, encode(order_webhook()), 401, "stale-timestamp", **{"webhook-timestamp": "1000000000"}),
    _case(ORDERS, encode(order_webhook(amount=1.5)), 400, "float-amount"),
    _case(ORDERS, b"{not json", 400, "not-json"),
    _case(ORDERS, b'{"x":' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "nested-too-deeply"),
    _case(ORDERS, encode(order_webhook(user_id="usr\u0000")), 400, "nul-in-an-id"),
    _case(DISPUTES, encode(dispute_webhook(reason="fraud\u0000")), 400, "nul-in-free-text"),
    _case(ORDERS, b"x" * 70_000, 413, "too-large"),
    _case(DISPUTES, encode(dispute_webhook()), 415, "media-type", **{"content-type": "text/plain"}),
]


@pytest.mark.parametrize(("path", "body", "headers", "status"), REJECTED)
async def test_rejected_requests_put_nothing_on_the_topics(kafka_ingest: str, settings: Settings, path: str,
                                                           body: bytes, headers: Callable[[], dict[str, str]],
                                                           status: int) -> None:
    with trio.fail_after(30):
        response = await _post(kafka_ingest, path, body, headers())
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"
        for topic in ("orders.webhooks", "disputes.webhooks"):
            assert await trio.to_thread.run_sync(record_count, settings.kafka_bootstrap_servers,
                                                 settings.topic(topic), settings.topic_partitions) == 0


async def test_validation_errors_name_the_fields(kafka_ingest: str) -> None:
    payload = order_webhook()
    del payload["order_id"]
    for bad, field in [(order_webhook(currency="eur"), "currency"), (payload, "order_id"),
                       (order_webhook(status="shipped"), "status"), (order_webhook(occurred_at="2026-11-20"),
                                                                      "occurred_at")]:
        body = encode(bad)
        response = await _post(kafka_ingest, "/webhooks/payments/orders", body, signed_headers(body))
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == field


async def test_broker_unreachable_is_a_quick_503(settings: Settings, kafka_ingest: str) -> None:
    """A second ingest pointed at a closed port: 503 with Retry-After, within the delivery deadline."""
    import trio_asyncio

    from ingest.service import serve_ingest
    from webhooks.embedded import free_port

    dead = settings.replace(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", ingest_port=0)
    shutdown = trio.Event()
    async with trio_asyncio.open_loop() as loop, trio.open_nursery() as nursery:
        url = (await nursery.start(serve_ingest, dead, loop, shutdown))[0]
        body = encode(order_webhook())
        started = time.monotonic()
        with trio.fail_after(20):
            response = await _post(url, "/webhooks/payments/orders", body, signed_headers(body))
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert time.monotonic() - started < 7
        shutdown.set()


async def test_schemas_are_served(kafka_ingest: str) -> None:
    async with httpx.AsyncClient(base_url=kafka_ingest) as client:
        schema = (await client.get("/schemas/order-webhook.json")).json()
        assert "OrderWebhook" in json.dumps(schema)
        assert (await client.get("/schemas/nope.json")).status_code == 404


def test_event_ids_are_deterministic() -> None:
    assert event_id_for("evt_1") == event_id_for("evt_1") != event_id_for("evt_2")
    assert uuid.UUID(event_id_for("evt_1")).version == 5
