"""Building and sending internal updates in tests, as JSON or Protobuf."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import httpx

from shared.messages import DisputeUpdate, OrderUpdate, PaymentDisputeUpdate, Update, encode_json
from shared.protobuf_codec import to_protobuf
from tests.api.conftest import INTERNAL

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
_ids = itertools.count()


def at(seconds: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def order_update(order_id: str, user_id: str, status: str, occurred_at: dt.datetime, **extra: Any) -> OrderUpdate:
    fields = dict(provider_event_id=f"pe-{next(_ids)}", order_id=order_id, user_id=user_id, status=status,
                  amount=1000, currency="EUR", occurred_at=occurred_at, event_id=f"ev-{next(_ids)}",
                  received_at=T0, correlation_id="corr-1")
    return OrderUpdate(**{**fields, **extra})


def dispute_update(dispute_id: str, order_id: str, user_id: str, status: str, occurred_at: dt.datetime,
                   **extra: Any) -> DisputeUpdate:
    fields = dict(provider_event_id=f"pe-{next(_ids)}", dispute_id=dispute_id, order_id=order_id, user_id=user_id,
                  status=status, reason="fraudulent", amount=1000, currency="EUR", occurred_at=occurred_at,
                  event_id=f"ev-{next(_ids)}", received_at=T0, correlation_id="corr-1")
    return DisputeUpdate(**{**fields, **extra})


def payment_dispute_update(dispute_id: str, payment_id: str, status: str, occurred_at: dt.datetime,
                           **extra: Any) -> PaymentDisputeUpdate:
    """A dispute named only by the provider's payment it disputes (Stripe), as ingest forwards it."""
    fields = dict(provider_event_id=f"pe-{next(_ids)}", dispute_id=dispute_id, provider_payment_id=payment_id,
                  status=status, reason="fraudulent", amount=1000, currency="EUR", occurred_at=occurred_at,
                  event_id=f"ev-{next(_ids)}", received_at=T0, correlation_id="corr-1")
    return PaymentDisputeUpdate(**{**fields, **extra})


async def send(client: httpx.AsyncClient, update: Update, encoding: str = "json") -> httpx.Response:
    path = "/internal/updates/" + ("orders" if isinstance(update, OrderUpdate) else "disputes")
    if encoding == "protobuf":
        body, content_type = to_protobuf(update).SerializeToString(), "application/x-protobuf"
    else:
        body, content_type = encode_json(update), "application/json"
    return await client.post(path, content=body, headers={**INTERNAL, "Content-Type": content_type})


async def create_order(client: httpx.AsyncClient, order_id: str, user_id: str, **headers: str) -> httpx.Response:
    response = await client.post("/orders", json={"order_id": order_id, "user_id": user_id, "amount": 1000,
                                                  "currency": "EUR"}, headers=headers)
    assert response.status_code in (200, 201), response.text
    return response


def outcome(response: httpx.Response, encoding: str) -> str:
    if encoding == "protobuf":
        from shared.proto import updates_pb2

        return updates_pb2.UpdateResult.FromString(response.content).outcome
    return response.json()["outcome"]
