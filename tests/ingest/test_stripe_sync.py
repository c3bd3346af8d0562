"""POST /webhooks/stripe in the sync modes, against a real api process on real shards.

Payment events: 202 applied, Stripe's retry 200 duplicate, an unknown order 404, a status the
order cannot take 422, an older event stale. Disputes find their order through the payment's link
(recorded once a payment event of that PaymentIntent was applied, from JSON and Protobuf alike):
before it exists 404 (Stripe retries), after it the dispute lands on that order.
"""

from __future__ import annotations

import httpx
import pytest
import trio

from shared.settings import Settings
from tests.conftest import TEST_API_TOKEN
from tests.ingest.test_http_mode import api_process, sync_ingest
from tests.stripe_requests import encode, stripe_event, stripe_headers
from webhooks.embedded import free_port

T = 1_763_632_800


async def _post(client: httpx.AsyncClient, event: dict[str, object]) -> httpx.Response:
    body = encode(event)
    return await client.post("/webhooks/stripe", content=body, headers=stripe_headers(body))


def _payment(event_type: str, order: str, at: int, event_id: str | None = None) -> dict[str, object]:
    return stripe_event(event_type, event_id=event_id, created=at, id="pi_sync",
                        metadata={"order_id": order, "user_id": "usr_s"})


@pytest.mark.parametrize(("mode", "encoding"), [("http", "json"), ("http", "protobuf"), ("grpc", "protobuf")])
async def test_stripe_payments_get_the_native_status_table(settings: Settings, service_env: dict[str, str],
                                                           mode: str, encoding: str) -> None:
    api_port, grpc_port = free_port(), free_port()
    with trio.fail_after(90):
        async with api_process(service_env, api_port, grpc_port, mode), \
                sync_ingest(settings.replace(api_encoding=encoding), api_port, grpc_port, mode) as ingest, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}",
                                  headers={"Authorization": f"Bearer {TEST_API_TOKEN}"}) as api:
            created = await api.post("/orders", json={"order_id": "ord_s", "user_id": "usr_s", "amount": 4999,
                                                      "currency": "EUR"})
            assert created.status_code == 201, created.text
            opened = stripe_event("charge.dispute.created", id="dp_sync", payment_intent="pi_sync", created=T + 40)
            early = await _post(ingest, opened)  # before any payment event of pi_sync: not linked yet
            assert early.status_code == 404 and early.json()["type"].endswith(":not-found"), early.text
            paid = _payment("payment_intent.succeeded", "ord_s", T + 20, "evt_paid")
            answers = [(await _post(ingest, event)).status_code for event in [
                _payment("payment_intent.amount_capturable_updated", "ord_s", T + 10),
                paid, paid,  # Stripe's retry
                _payment("payment_intent.processing", "ord_s", T + 5),  # older than the last applied: stale
                _payment("payment_intent.canceled", "ord_s", T + 30),  # paid -> canceled: not allowed
                _payment("payment_intent.succeeded", "ord_nobody", T + 30),
            ]]
            assert answers == [202, 202, 200, 202, 422, 404]
            disputes = [(await _post(ingest, event)).status_code for event in [
                opened,  # Stripe's retry of the early one: the payment is linked now
                opened,  # and again: a duplicate
                stripe_event("charge.dispute.closed", id="dp_sync", payment_intent="pi_sync", status="won",
                             created=T + 50),
                stripe_event("charge.dispute.created", id="dp_other", payment_intent="pi_unknown", created=T + 40),
            ]]
            assert disputes == [202, 200, 202, 404]
            order = (await api.get("/orders/ord_s")).json()
            dispute = (await api.get("/disputes/dp_sync")).json()
            assert (await api.get("/disputes/dp_other")).status_code == 404
    assert order["status"] == "paid"
    assert [(e["status"], e["applied"]) for e in order["events"]] == [
        ("pending", False), ("authorized", True), ("paid", True)]
    assert (dispute["order_id"], dispute["status"]) == ("ord_s", "won")
    assert [(e["status"], e["applied"]) for e in dispute["events"]] == [("opened", True), ("won", True)]
