"""Workers under failure: killed, scaled out, database down, SIGTERM mid-stream."""

from __future__ import annotations

import datetime as dt
import signal

import httpx
import pytest
import trio
import trio_asyncio

from shared.migrations import migrate_dsn
from shared.settings import Settings
from shared.topics import DISPUTES, ORDERS
from tests.processes import running_service
from tests.workers.conftest import Shards, produce, wait_until
from tests.workers.test_workers import _dlq_count, interleaved
from webhooks.embedded import create_databases, dsn, free_port, open_pg_cluster, run_postgres


async def _stored(shards: Shards, expected: int) -> bool:
    return await shards.count("order_events") >= expected


async def _assert_exactly_once(shards: Shards, users: list[str], events: int) -> None:
    assert await shards.count("order_events") == events  # UNIQUE(order_id, provider_event_id): never twice
    statuses = [row["status"] for row in await shards.fetch("SELECT status FROM orders")]
    assert statuses == ["refunded"] * len(users)
    assert await shards.fetch("SELECT 1 FROM order_events WHERE NOT applied") == []


@pytest.mark.parametrize("stop", ["kill -9", "SIGTERM"])
async def test_a_worker_stopped_mid_stream_then_restarted_applies_everything_once(
        settings: Settings, service_env: dict[str, str], topics: None, shards: Shards, stop: str) -> None:
    """kill -9: restart from the committed offsets, duplicates absorbed; SIGTERM: drain, commit, exit 0."""
    users = [f"user-{i}" for i in range(400)]
    await shards.seed_orders(users)
    events = interleaved(users)
    await trio.to_thread.run_sync(produce, settings, events)
    with trio.fail_after(120):
        small = {**service_env, "WORKER_MAX_BATCH": "20", "WORKER_MAILBOX_SIZE": "40"}  # a drain leaves some behind
        async with running_service("workers", small) as first:
            await wait_until(lambda: _stored(shards, 1), "the first events are stored")
            if stop == "kill -9":
                first.process.kill()
                await first.process.wait()
            else:
                first.process.send_signal(signal.SIGTERM)
                with trio.fail_after(15):
                    assert await first.process.wait() == 0
        assert await shards.count("order_events") < len(events)  # it really stopped mid-stream
        async with running_service("workers", service_env):
            await wait_until(lambda: _stored(shards, len(events)), "every event is stored")
    await _assert_exactly_once(shards, users, len(events))
    assert await _dlq_count(settings, ORDERS) == 0


async def _metric(url: str, name: str) -> float:
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(url + "/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(name + "{"))


async def _assigned(url: str) -> int:
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(url + "/metrics")).text
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in metrics.splitlines()
               if line.startswith("worker_assigned_partitions{") and ORDERS in line)


async def test_two_worker_processes_split_the_partitions(
        settings: Settings, service_env: dict[str, str], topics: None, shards: Shards) -> None:
    users = [f"user-{i}" for i in range(200)]
    await shards.seed_orders(users)
    with trio.fail_after(120):
        async with running_service("workers", service_env) as one, running_service("workers", service_env) as two:
            async def split() -> bool:
                counts = [await _assigned(one.url), await _assigned(two.url)]
                return min(counts) >= 1 and sum(counts) == settings.topic_partitions

            await wait_until(split, "both processes own partitions")
            events = interleaved(users)
            await trio.to_thread.run_sync(produce, settings, events)
            await wait_until(lambda: _stored(shards, len(events)), "every event is stored")
    await _assert_exactly_once(shards, users, len(events))


async def test_database_down_for_a_while_no_dead_letters_all_applied(
        settings: Settings, service_env: dict[str, str], topics: None) -> None:
    port = free_port()
    users = [f"user-{i}" for i in range(50)]
    events = interleaved(users)
    with trio.fail_after(120):
        async with open_pg_cluster() as cluster, trio_asyncio.open_loop() as loop:
            async with run_postgres(cluster, port):
                await create_databases(port, ["shard0", "shard1"])
                urls = (dsn(port, "shard0"), dsn(port, "shard1"))
                for url in urls:
                    await loop.run_aio_coroutine(migrate_dsn(url, dt.date.today()))
                shards = Shards(urls, loop)
                await shards.seed_orders(users)
            env = {**service_env, "DATABASE_URLS": ",".join(urls)}
            async with running_service("workers", env, wait=False) as worker:
                await trio.to_thread.run_sync(produce, settings, events)

                async def retried_a_while() -> bool:  # the outage lasts: the workers back off and retry
                    return await _metric(worker.url, "worker_transient_retries_total") >= 5

                await wait_until(retried_a_while, "the workers retried five times")
                assert await _dlq_count(settings, ORDERS) == 0
                async with run_postgres(cluster, port):
                    await wait_until(lambda: _stored(shards, len(events)), "every event is stored")
                    await _assert_exactly_once(shards, users, len(events))
    for logical in (ORDERS, DISPUTES):
        assert await _dlq_count(settings, logical) == 0
