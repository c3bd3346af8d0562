"""POST /webhooks/stripe in the sync modes, against a real api process on real shards.

Payment events: 202 applied, Stripe's retry 200 duplicate, an unknown order 404, a status the
order cannot take 422, an older event stale. Disputes are not carried in sync modes yet (README,
Providers): 503 with Retry-After, so Stripe retries and nothing is written.
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


@pytest.mark.parametrize("mode", ["http", "grpc"])
async def test_stripe_payments_get_the_native_status_table(settings: Settings, service_env: dict[str, str],
                                                           mode: str) -> None:
    api_port, grpc_port = free_port(), free_port()
    with trio.fail_after(90):
        async with api_process(service_env, api_port, grpc_port, mode), \
                sync_ingest(settings, api_port, grpc_port, mode) as ingest, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}",
                                  headers={"Authorization": f"Bearer {TEST_API_TOKEN}"}) as api:
            created = await api.post("/orders", json={"order_id": "ord_s", "user_id": "usr_s", "amount": 4999,
                                                      "currency": "EUR"})
            assert created.status_code == 201, created.text
            paid = _payment("payment_intent.succeeded", "ord_s", T + 20, "evt_paid")
            answers = [(await _post(ingest, event)).status_code for event in [
                _payment("payment_intent.amount_capturable_updated", "ord_s", T + 10),
                paid, paid,  # Stripe's retry
                _payment("payment_intent.processing", "ord_s", T + 5),  # older than the last applied: stale
                _payment("payment_intent.canceled", "ord_s", T + 30),  # paid -> canceled: not allowed
                _payment("payment_intent.succeeded", "ord_nobody", T + 30),
            ]]
            assert answers == [202, 202, 200, 202, 422, 404]
            dispute = await _post(ingest, stripe_event("charge.dispute.created", payment_intent="pi_sync"))
            assert dispute.status_code == 503 and dispute.headers["retry-after"]
            order = (await api.get("/orders/ord_s")).json()
    assert order["status"] == "paid"
    assert [(e["status"], e["applied"]) for e in order["events"]] == [
        ("pending", False), ("authorized", True), ("paid", True)]
