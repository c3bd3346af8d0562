"""Producing envelopes, seeding orders, and reading shards back, for the worker tests."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
import trio
import trio_asyncio
from confluent_kafka import Producer

from shared.envelope import TraceContext, build_envelope, record_headers
from shared.messages import DisputeWebhook, OrderWebhook, encode_json
from shared.settings import Settings
from shared.sharding import shard_for
from shared.topics import ALL_TOPICS, DISPUTES, ORDERS, admin_client, create_topics

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
_ids = itertools.count()


@pytest.fixture
async def topics(settings: Settings) -> None:
    await trio.to_thread.run_sync(create_topics, admin_client(settings.kafka_bootstrap_servers),
                                  [settings.topic(t) for t in ALL_TOPICS], settings.topic_partitions)


def order_event(user: str, status: str, seconds: int, order_id: str | None = None) -> OrderWebhook:
    return OrderWebhook(provider_event_id=f"pe-{next(_ids)}", order_id=order_id or f"order-{user}", user_id=user,
                        status=status, amount=1000, currency="EUR", occurred_at=T0 + dt.timedelta(seconds=seconds))


def dispute_event(user: str, status: str, seconds: int) -> DisputeWebhook:
    return DisputeWebhook(provider_event_id=f"pe-{next(_ids)}", dispute_id=f"dispute-{user}",
                          order_id=f"order-{user}", user_id=user, status=status, reason="fraudulent", amount=1000,
                          currency="EUR", occurred_at=T0 + dt.timedelta(seconds=seconds))


def produce(settings: Settings, events: list[OrderWebhook | DisputeWebhook], raw: list[tuple[str, bytes]] = ()) -> None:
    """Publish ``events`` as ingest would (envelope, key, headers), and ``raw`` (topic, value) records as they are."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, "enable.idempotence": True,
                         "linger.ms": 5})
    now = dt.datetime.now(dt.UTC)
    for event in events:
        trace = TraceContext.from_header(None)
        envelope = build_envelope(event, now, f"corr-{event.provider_event_id}", trace)
        topic = settings.topic(ORDERS if isinstance(event, OrderWebhook) else DISPUTES)
        producer.produce(topic, encode_json(envelope), event.user_id.encode(), headers=record_headers(envelope, trace))
        producer.poll(0)
    for logical, value in raw:
        producer.produce(settings.topic(logical), value, b"poison-key", headers=[("event_type", b"x")])
    assert producer.flush(30) == 0


async def _execute_many(url: str, sql: str, rows: list[tuple]) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(sql, rows)
    finally:
        await conn.close()


async def _fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


class Shards:
    """The test's shard databases, from the test's trio code."""

    def __init__(self, urls: tuple[str, ...], loop: trio_asyncio.TrioEventLoop) -> None:
        self.urls, self.loop = urls, loop

    async def seed_orders(self, users: list[str]) -> None:
        for shard, url in enumerate(self.urls):
            rows = [(f"order-{u}", u) for u in users if shard_for(u, len(self.urls)) == shard]
            await self.loop.run_aio_coroutine(_execute_many(
                url, "INSERT INTO orders (order_id, user_id, status, amount, currency)"
                     " VALUES ($1, $2, 'created', 1000, 'EUR')", rows))

    async def fetch(self, sql: str) -> list[asyncpg.Record]:
        rows = []
        for url in self.urls:
            rows += await self.loop.run_aio_coroutine(_fetch(url, sql))
        return rows

    async def count(self, table: str) -> int:
        return sum(r[0] for r in await self.fetch(f"SELECT count(*) FROM {table}"))


@pytest.fixture
async def shards(settings: Settings) -> Shards:
    async with trio_asyncio.open_loop() as loop:
        yield Shards(settings.database_urls, loop)


async def wait_until(condition: Callable[[], Awaitable[bool]], what: str, within: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``within`` seconds."""
    with trio.move_on_after(within):
        while not await condition():
            await trio.sleep(0.1)
        return
    raise AssertionError(f"timed out waiting until {what}")
