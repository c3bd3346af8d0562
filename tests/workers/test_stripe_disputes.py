"""Stripe through kafka mode, end to end: ingest in-process, a real workers process, real shards.

A Stripe dispute names only the PaymentIntent it disputes: the workers tie it to its order
through the link its payment event recorded. One that arrives before its payment waits in
its retry lane, is dead-lettered as ``not_found``, and applies once replayed after the payment.
"""

from __future__ import annotations

import httpx
import trio

from shared.settings import Settings
from shared.topics import DISPUTES
from tests.ingest.conftest import kafka_ingest, record_count  # noqa: F401 - kafka_ingest: the fixture, used below
from tests.processes import running_service
from tests.stripe_requests import encode, stripe_event, stripe_headers
from tests.workers.conftest import Shards, wait_until
from webhooks.dlq import read_letters, replay

T = 1_763_632_800


async def _post(client: httpx.AsyncClient, event: dict[str, object]) -> int:
    body = encode(event)
    return (await client.post("/webhooks/stripe", content=body, headers=stripe_headers(body))).status_code


def _payment(user: str, payment: str, event_type: str = "payment_intent.succeeded", at: int = T) -> dict[str, object]:
    return stripe_event(event_type, created=at, id=payment, metadata={"order_id": f"order-{user}", "user_id": user})


def _dispute(event_type: str, dispute: str, payment: str, status: str, at: int) -> dict[str, object]:
    return stripe_event(event_type, created=at, id=dispute, payment_intent=payment, status=status)


async def _rows(shards: Shards, sql: str) -> list[tuple[object, ...]]:
    return sorted(tuple(row) for row in await shards.fetch(sql))  # every shard's rows, in one order


async def test_disputes_find_their_order_through_the_payment_and_an_early_one_is_replayed(
        settings: Settings, service_env: dict[str, str], kafka_ingest: str,  # noqa: F811 - the imported fixture
        shards: Shards) -> None:
    await shards.seed_orders(["usr_a", "usr_b"])
    env = {**service_env, "WORKER_NOT_FOUND_WINDOW": "1s"}
    early = _dispute("charge.dispute.created", "dp_b", "pi_b", "needs_response", T + 10)
    with trio.fail_after(120):
        async with httpx.AsyncClient(base_url=kafka_ingest, timeout=30) as client, \
                running_service("workers", env):
            assert await _post(client, early) == 202  # before its payment: no order known for pi_b yet
            paid = _payment("usr_a", "pi_a")
            stream = [paid, paid,  # Stripe retries: the same event id, applied once
                      _dispute("charge.dispute.created", "dp_a", "pi_a", "needs_response", T + 10),
                      _dispute("charge.dispute.closed", "dp_a", "pi_a", "won", T + 30),
                      _dispute("charge.dispute.updated", "dp_a", "pi_a", "under_review", T + 20)]  # late: stale
            assert [await _post(client, event) for event in stream] == [202] * len(stream)
            await wait_until(lambda: _has(shards, "SELECT 1 FROM disputes WHERE dispute_id = 'dp_a'"
                                                  " AND status = 'won'"), "dispute dp_a is won")
            await wait_until(lambda: _dead_letters(settings, 1), "the early dispute is dead-lettered")
            assert await _post(client, _payment("usr_b", "pi_b")) == 202
            await wait_until(lambda: _has(shards, "SELECT 1 FROM payment_links WHERE provider_payment_id = 'pi_b'"),
                             "pi_b is linked to its order")
            letters = await trio.to_thread.run_sync(lambda: list(read_letters(settings, reason="not_found")))
            assert len(letters) == 1 and letters[0].key == b"pi_b"
            await trio.to_thread.run_sync(replay, settings, letters)
            await wait_until(lambda: _has(shards, "SELECT 1 FROM disputes WHERE dispute_id = 'dp_b'"),
                             "the replayed dispute is applied")
    assert await _rows(shards, "SELECT order_id, user_id, status FROM disputes ORDER BY dispute_id") == [
        ("order-usr_a", "usr_a", "won"), ("order-usr_b", "usr_b", "opened")]
    assert await _rows(shards, "SELECT order_id, status FROM orders ORDER BY order_id") == [
        ("order-usr_a", "paid"), ("order-usr_b", "paid")]
    assert await _rows(shards, "SELECT order_id FROM order_events WHERE order_id = 'order-usr_a'") == [("order-usr_a",)]
    events = await _rows(shards, "SELECT occurred_at, status, applied FROM dispute_events WHERE dispute_id = 'dp_a'")
    assert [event[1:] for event in events] == [("opened", True), ("evidence_submitted", False), ("won", True)]
    assert (await _rows(shards, "SELECT provider_payment_id, order_id, user_id FROM payment_links")) == [
        ("pi_a", "order-usr_a", "usr_a"), ("pi_b", "order-usr_b", "usr_b")]


async def _has(shards: Shards, sql: str) -> bool:
    return bool(await shards.fetch(sql))


async def _dead_letters(settings: Settings, at_least: int) -> bool:
    count = await trio.to_thread.run_sync(record_count, settings.kafka_bootstrap_servers,
                                          settings.topic(DISPUTES + ".DLQ"), settings.topic_partitions)
    return count >= at_least
