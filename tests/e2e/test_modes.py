"""End to end, every mode: signed webhooks into ingest, state read back through the public api."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.e2e.conftest import API_TOKEN, SECRET, Stack, wait_for
from webhooks.sample import send_sample, send_stripe_sample, signed_post

pytestmark = pytest.mark.e2e


def _states(stack: Stack, expected: dict[str, str]) -> dict[str, str]:
    found = {}
    with httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {API_TOKEN}"}) as client:
        for key in expected:
            path = f"/orders/{key}" if key.startswith("ord_") else f"/disputes/{key}"
            response = client.get(path)
            found[key] = response.json()["status"] if response.status_code == 200 else str(response.status_code)
    return found


def test_a_sample_stream_is_applied(stack: Stack) -> None:
    statuses: list[str] = []
    expected = send_sample(stack.sample, users=4, report=statuses.append)
    wait_for(lambda: _states(stack, expected) == expected, "every order is paid and every dispute won")
    answers = [line.rsplit("→ ", 1)[1][:3] for line in statuses if "/webhooks/" in line]
    if stack.mode == "kafka":
        assert set(answers) == {"202"}  # accepted once on the topic, retries included
    else:
        assert answers.count("200") == 4 and set(answers) == {"200", "202"}  # each retry: 200 duplicate
    with httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {API_TOKEN}"}) as client:
        order = client.get(f"/orders/{next(iter(expected))}").json()
    assert [(e["status"], e["applied"]) for e in order["events"]] == [("authorized", True), ("paid", True)]


def test_a_stripe_stream_is_applied(stack: Stack) -> None:
    """Stripe's events in every mode: PaymentIntent events (Stripe's retry, an older event arriving late),
    then disputes that name only the PaymentIntent and land on its order (kafka: resolved by the workers,
    keyed by the payment; http/grpc: resolved by the api through the forwarder's batch calls)."""
    statuses: list[str] = []
    expected = send_stripe_sample(stack.sample, users=2, report=statuses.append)
    wait_for(lambda: _states(stack, expected) == expected, "every order is paid and every dispute won")
    answers = [line.rsplit("→ ", 1)[1][:3] for line in statuses if "/webhooks/stripe" in line]
    assert len(answers) == 2 * 4 + 3  # per user 4 payment events; one user's dispute: 3 events
    if stack.mode == "kafka":
        assert set(answers) == {"202"}
    else:
        assert answers.count("200") == 2 and set(answers) == {"200", "202"}  # each retry: 200 duplicate
    order_id, dispute_id = next(iter(expected)), next(key for key in expected if key.startswith("dp_"))
    with httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {API_TOKEN}"}) as client:
        order = client.get(f"/orders/{order_id}").json()
        dispute = client.get(f"/disputes/{dispute_id}").json()
    assert [(e["status"], e["applied"]) for e in order["events"]] == [
        ("pending", False), ("authorized", True), ("paid", True)]  # the late "processing": stored, stale
    assert dispute["order_id"] == order_id  # the order of the disputed PaymentIntent, user 0's
    assert [(e["status"], e["applied"]) for e in dispute["events"]] == [
        ("opened", True), ("evidence_submitted", True), ("won", True)]


def test_the_correlation_id_reaches_the_last_hop(stack: Stack) -> None:
    run, correlation_id = uuid.uuid4().hex[:6], f"e2e-{uuid.uuid4().hex}"
    with httpx.Client(timeout=30) as client:
        client.post(f"{stack.api_url}/orders", headers={"Authorization": f"Bearer {API_TOKEN}"},
                    json={"order_id": f"ord_{run}", "user_id": f"usr_{run}", "amount": 100, "currency": "EUR"})
        response = signed_post(client, f"{stack.ingest_url}/webhooks/payments/orders", SECRET, {
            "provider_event_id": f"evt_{run}", "order_id": f"ord_{run}", "user_id": f"usr_{run}", "status": "paid",
            "amount": 100, "currency": "EUR", "occurred_at": "2026-11-20T10:00:00Z"}, correlation_id)
    assert response.status_code == 202 and response.headers["x-correlation-id"] == correlation_id
    last_hop = '"service": "workers"' if stack.mode == "kafka" else '"service": "api"'
    wait_for(lambda: any(correlation_id in line and last_hop in line for line in stack.logs().splitlines()),
             f"a {last_hop} log line carries the correlation id")


def test_bad_signatures_are_refused_and_change_nothing(stack: Stack) -> None:
    with httpx.Client(timeout=30) as client:
        response = signed_post(client, f"{stack.ingest_url}/webhooks/payments/orders", b"not-the-secret-012345",
                               {"provider_event_id": "x"})
    assert response.status_code == 401 and response.headers["content-type"] == "application/problem+json"


def test_metrics_show_the_series_after_a_stream(stack: Stack) -> None:
    send_sample(stack.sample, users=2, report=lambda line: None)
    with httpx.Client(timeout=30) as client:
        ingest = client.get(f"{stack.ingest_url}/metrics").text
        api = client.get(f"{stack.api_url}/metrics").text
        assert 'http_requests_total{route="/webhooks/payments/orders",status="202"}' in ingest
        assert 'http_requests_total{route="/orders",status="201"}' in api
        if stack.mode == "kafka":
            assert "kafka_delivery_seconds_bucket" in ingest
            def applied_counted() -> bool:
                lines = client.get(f"{stack.workers_url}/metrics").text.splitlines()
                return any(line.startswith("worker_events_total{") and 'outcome="applied"' in line for line in lines)

            wait_for(applied_counted, "the workers count applied events")
            text = client.get(f"{stack.workers_url}/metrics").text
            for series in ("worker_consumer_lag", "worker_mailbox_depth", "worker_batch_size_bucket",
                           "worker_end_to_end_seconds_bucket", "worker_assigned_partitions"):
                assert series in text, series
        else:
            assert 'circuit_breaker_state{breaker="api",state="closed"} 1.0' in ingest
