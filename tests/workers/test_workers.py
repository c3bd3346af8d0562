"""Workers as real processes, against the embedded broker and PostgreSQL."""

from __future__ import annotations

import json

import trio

from shared.settings import Settings
from shared.topics import DISPUTES, ORDERS
from tests.ingest.conftest import read_records, record_count
from tests.processes import running_service
from tests.workers.conftest import Shards, dispute_event, order_event, produce, wait_until

LIFECYCLE = ["pending", "authorized", "paid", "refunded"]  # each step is invalid if it comes too early


def interleaved(users: list[str]) -> list:
    """Every user's lifecycle, users interleaved: user0 step0, user1 step0, ..., user0 step1, ..."""
    return [order_event(user, status, seconds=step) for step, status in enumerate(LIFECYCLE) for user in users]


async def test_per_user_order_under_concurrency(settings: Settings, service_env: dict[str, str], topics: None,
                                                shards: Shards) -> None:
    users = [f"user-{i}" for i in range(60)]
    await shards.seed_orders(users)
    events = interleaved(users)
    await trio.to_thread.run_sync(produce, settings, events)
    with trio.fail_after(90):
        async with running_service("workers", service_env):
            await wait_until(lambda: _count(shards, "order_events", len(events)), "every event is stored")
    statuses = await shards.fetch("SELECT status FROM orders")
    assert [row["status"] for row in statuses] == ["refunded"] * len(users)
    assert await shards.fetch("SELECT 1 FROM order_events WHERE NOT applied") == []
    for logical in (ORDERS, DISPUTES):
        assert await _dlq_count(settings, logical) == 0


async def test_poison_records_go_to_the_dlq_while_the_partition_keeps_flowing(
        settings: Settings, service_env: dict[str, str], topics: None, shards: Shards) -> None:
    users = [f"user-{i}" for i in range(6)]
    await shards.seed_orders(users)
    good = [order_event(u, "paid", 1) for u in users]
    unknown_order = order_event("user-0", "paid", 2, order_id="order-nobody")
    too_early = order_event("user-1", "pending", 3)  # paid -> pending: invalid
    dispute_first_won = dispute_event("user-2", "won", 4)  # a new dispute must start 'opened'
    later = [order_event(u, "refunded", 10) for u in users]
    await trio.to_thread.run_sync(produce, settings, [*good, unknown_order, too_early, dispute_first_won, *later],
                                  [(ORDERS, b"{not json"), (DISPUTES, b'{"event_id": 1}')])
    with trio.fail_after(90):
        async with running_service("workers", service_env):
            await wait_until(lambda: _count(shards, "order_events", len(good) + len(later)), "valid events stored")
            await wait_until(lambda: _dlq_at_least(settings, 5), "five dead letters")
    statuses = [row["status"] for row in await shards.fetch("SELECT status FROM orders")]
    assert statuses == ["refunded"] * len(users)
    letters = await trio.to_thread.run_sync(_dlq_records, settings)
    reasons = sorted(headers["dlq.reason"] for headers, _ in letters)
    assert reasons == ["invalid_transition", "not_found", "not_found", "schema", "schema"]
    headers, value = next((h, v) for h, v in letters if h["dlq.reason"] == "invalid_transition")
    assert json.loads(value)["data"]["provider_event_id"] == too_early.provider_event_id
    assert headers["dlq.original.topic"] == settings.topic(ORDERS)
    assert int(headers["dlq.original.offset"]) >= 0 and int(headers["dlq.attempts"]) >= 1
    assert {"dlq.original.partition", "dlq.failed_at", "dlq.error", "event_type", "traceparent"} <= set(headers)
    not_found = [h for h, _ in letters if h["dlq.reason"] == "not_found"]
    assert all(int(h["dlq.attempts"]) >= 3 for h in not_found)  # retried in its user's lane, then it stands


async def _count(shards: Shards, table: str, expected: int) -> bool:
    return await shards.count(table) >= expected


async def _dlq_count(settings: Settings, logical: str) -> int:
    return await trio.to_thread.run_sync(record_count, settings.kafka_bootstrap_servers,
                                         settings.topic(logical + ".DLQ"), settings.topic_partitions)


async def _dlq_at_least(settings: Settings, count: int) -> bool:
    return await _dlq_count(settings, ORDERS) + await _dlq_count(settings, DISPUTES) >= count


def _dlq_records(settings: Settings) -> list[tuple[dict[str, str], bytes]]:
    records = []
    for logical, count in ((ORDERS, 3), (DISPUTES, 2)):
        for record in read_records(settings.kafka_bootstrap_servers, settings.topic(logical + ".DLQ"),
                                   settings.topic_partitions, count):
            records.append(({k: v.decode() for k, v in record.headers()}, record.value()))
    return records
