"""``webhooks send-sample``: a realistic little stream, signed and posted, so a newcomer sees it work.

For each sample user: an order is created through the api, then its payment moves
authorized → paid (the provider sends "paid" twice: a retry), and every other user
gets a chargeback: opened → evidence_submitted → won.

``--provider stripe`` sends the same story as Stripe would (``POST /webhooks/stripe``, signed
per ``Stripe-Signature``): PaymentIntent events (a retry, and an older ``processing`` event
arriving late: stale), then the disputes, which name only the PaymentIntent and find their
order through it once a payment event of it was applied. Disputes come days after their
payment in life; the sample waits until the payments show before sending them (in kafka mode a
202 only means queued, and a dispute whose payment is not applied yet is retried, then
dead-lettered).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from ingest.providers.stripe import sign as stripe_sign
from ingest.signatures import signed_headers


@dataclass(frozen=True)
class Sample:
    ingest_url: str
    api_url: str
    secret: bytes
    api_token: str
    stripe_secret: str = ""  # a whsec_… of STRIPE_WEBHOOK_SECRETS, for --provider stripe


def expected_states(run: str, users: int) -> dict[str, str]:
    """What the api should show once the stream is applied: id → status."""
    states = {f"ord_{run}_{i}": "paid" for i in range(users)}
    states.update({f"dsp_{run}_{i}": "won" for i in range(0, users, 2)})
    return states


def _webhooks(run: str, users: int) -> list[tuple[str, dict[str, object]]]:
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    stream: list[tuple[str, dict[str, object]]] = []
    for i in range(users):
        user, order = f"usr_{run}_{i}", f"ord_{run}_{i}"
        common = {"order_id": order, "user_id": user, "amount": 4999, "currency": "EUR"}
        stream.append(("orders", {**common, "provider_event_id": f"evt_{run}_{i}_a", "status": "authorized",
                                  "occurred_at": (start + dt.timedelta(seconds=1)).isoformat()}))
        paid = {**common, "provider_event_id": f"evt_{run}_{i}_p", "status": "paid",
                "occurred_at": (start + dt.timedelta(seconds=2)).isoformat()}
        stream += [("orders", paid), ("orders", paid)]  # the provider retries: same event, same event_id
        if i % 2 == 0:
            for step, status in enumerate(("opened", "evidence_submitted", "won"), start=3):
                stream.append(("disputes", {**common, "dispute_id": f"dsp_{run}_{i}", "reason": "fraudulent",
                                            "provider_event_id": f"evt_{run}_{i}_d{step}", "status": status,
                                            "occurred_at": (start + dt.timedelta(seconds=step)).isoformat()}))
    return stream


def read_back(sample: Sample, expected: dict[str, str], wait_seconds: float) -> dict[str, str]:
    """Each id's status as the api shows it, polled until all match ``expected`` or the time is up.

    In kafka mode a 202 means queued: the states arrive once the workers applied them."""
    deadline = time.monotonic() + wait_seconds
    headers = {"Authorization": f"Bearer {sample.api_token}"}
    with httpx.Client(base_url=sample.api_url, headers=headers, timeout=10) as client:
        while True:
            found = {key: status for key in expected if (status := _status(client, key)) is not None}
            if found == expected or time.monotonic() >= deadline:
                return found
            time.sleep(0.2)  # a command-line poll, not a test: the api shows the states when they are applied


def _status(client: httpx.Client, key: str) -> str | None:
    response = client.get(f"/{'disputes' if key.startswith(('dsp_', 'dp_')) else 'orders'}/{key}")
    return str(response.json()["status"]) if response.status_code == 200 else None


def signed_post(client: httpx.Client, url: str, secret: bytes, payload: dict[str, object],
                correlation_id: str | None = None) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = signed_headers(secret, f"msg_{uuid.uuid4().hex}", body)
    if correlation_id:
        headers["x-correlation-id"] = correlation_id
    return client.post(url, content=body, headers=headers)


def _create_orders(client: httpx.Client, sample: Sample, run: str, users: int, report: Callable[[str], None]) -> None:
    for i in range(users):
        order = {"order_id": f"ord_{run}_{i}", "user_id": f"usr_{run}_{i}", "amount": 4999, "currency": "EUR"}
        response = client.post(f"{sample.api_url}/orders", json=order,
                               headers={"Authorization": f"Bearer {sample.api_token}"})
        report(f"POST /orders {order['order_id']} → {response.status_code}")
        response.raise_for_status()


def send_sample(sample: Sample, users: int = 4, run: str | None = None,
                report: Callable[[str], None] = print) -> dict[str, str]:
    """Post the stream; returns the states to expect (see ``expected_states``)."""
    run = run or uuid.uuid4().hex[:6]
    with httpx.Client(timeout=30) as client:
        _create_orders(client, sample, run, users, report)
        for kind, payload in _webhooks(run, users):
            response = signed_post(client, f"{sample.ingest_url}/webhooks/payments/{kind}", sample.secret, payload)
            report(f"POST /webhooks/payments/{kind} {payload['provider_event_id']} {payload['status']} → "
                   f"{response.status_code} {response.text}")
    return expected_states(run, users)


# --- the same story from Stripe ----------------------------------------------------------------

def expected_stripe_states(run: str, users: int) -> dict[str, str]:
    """What the api should show once the Stripe stream is applied: id → status."""
    states = {f"ord_{run}_{i}": "paid" for i in range(users)}
    states.update({f"dp_{run}_{i}": "won" for i in range(0, users, 2)})
    return states


def _stripe_event(event_id: str, event_type: str, created: int, obj: dict[str, object]) -> dict[str, object]:
    return {"id": event_id, "object": "event", "api_version": "2024-06-20", "created": created, "livemode": False,
            "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None}, "type": event_type,
            "data": {"object": obj}}


def stripe_payments(run: str, users: int, start: int) -> list[dict[str, object]]:
    """Per user: its PaymentIntent becomes capturable, then succeeds (sent twice: Stripe's retry), then
    an older ``processing`` event arrives late (stale: no state change)."""
    events: list[dict[str, object]] = []
    for i in range(users):
        intent = {"id": f"pi_{run}_{i}", "object": "payment_intent", "amount": 4999, "currency": "eur",
                  "metadata": {"order_id": f"ord_{run}_{i}", "user_id": f"usr_{run}_{i}"}}
        succeeded = _stripe_event(f"evt_{run}_{i}_p", "payment_intent.succeeded", start + 2,
                                  {**intent, "status": "succeeded"})
        events += [_stripe_event(f"evt_{run}_{i}_a", "payment_intent.amount_capturable_updated", start + 1,
                                 {**intent, "status": "requires_capture"}),
                   succeeded, succeeded,
                   _stripe_event(f"evt_{run}_{i}_q", "payment_intent.processing", start,
                                 {**intent, "status": "processing"})]
    return events


def stripe_disputes(run: str, users: int, start: int) -> list[dict[str, object]]:
    """Every other user: a dispute of its PaymentIntent, needs_response → under_review → won."""
    events: list[dict[str, object]] = []
    for i in range(0, users, 2):
        dispute = {"id": f"dp_{run}_{i}", "object": "dispute", "amount": 4999, "currency": "eur",
                   "reason": "fraudulent", "charge": f"ch_{run}_{i}", "payment_intent": f"pi_{run}_{i}"}
        for step, (event_type, status) in enumerate((("charge.dispute.created", "needs_response"),
                                                    ("charge.dispute.updated", "under_review"),
                                                    ("charge.dispute.closed", "won")), start=3):
            events.append(_stripe_event(f"evt_{run}_{i}_d{step}", event_type, start + step,
                                        {**dispute, "status": status}))
    return events


def stripe_post(client: httpx.Client, ingest_url: str, secret: str, event: dict[str, object]) -> httpx.Response:
    """``event`` posted to ``/webhooks/stripe`` as Stripe signs it."""
    body = json.dumps(event).encode()
    headers = {"content-type": "application/json", "stripe-signature": stripe_sign(secret, int(time.time()), body)}
    return client.post(f"{ingest_url}/webhooks/stripe", content=body, headers=headers)


def send_stripe_sample(sample: Sample, users: int = 4, wait_seconds: float = 30.0, run: str | None = None,
                       report: Callable[[str], None] = print) -> dict[str, str]:
    """Post the Stripe stream (payments; once they show, the disputes); returns the states to expect."""
    run = run or uuid.uuid4().hex[:6]
    start = int(time.time()) - 60
    with httpx.Client(timeout=30) as client:
        _create_orders(client, sample, run, users, report)

        def post(events: list[dict[str, object]]) -> None:
            for event in events:
                response = stripe_post(client, sample.ingest_url, sample.stripe_secret, event)
                report(f"POST /webhooks/stripe {event['id']} {event['type']} → {response.status_code} {response.text}")

        post(stripe_payments(run, users, start))
        payments = {f"ord_{run}_{i}": "paid" for i in range(users)}
        report(f"waiting until the payments show (up to {wait_seconds:.0f} s): a dispute finds its order through them")
        read_back(sample, payments, wait_seconds)
        post(stripe_disputes(run, users, start))
    return expected_stripe_states(run, users)
