"""The ceilings the services are measured against, on the same machine in the same run.

Raw produce: confluent-kafka producing to the embedded broker with nothing else in
the way. PostgreSQL: asyncpg ``executemany`` of event-shaped rows in one transaction.
(The third, a bare ASGI app on hypercorn-trio, runs inside the ingest scenario.)
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import asyncpg
import trio
from confluent_kafka import Producer

from shared.asyncio_loop import open_asyncio_loop
from shared.topics import admin_client, create_topics
from webhooks.embedded import create_databases, dsn, open_embedded_broker, open_embedded_postgres

MESSAGES = 200_000
ROWS = 100_000


@dataclass(frozen=True)
class Ceiling:
    name: str
    per_second: float
    unit: str


def _produce(bootstrap: str) -> float:
    create_topics(admin_client(bootstrap), ["ceiling.produce"], 6)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5})
    value = b"x" * 400
    started = time.perf_counter()
    for index in range(MESSAGES):
        while True:
            try:
                producer.produce("ceiling.produce", value, str(index % 1000).encode())
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    assert producer.flush(120) == 0
    return MESSAGES / (time.perf_counter() - started)


async def _executemany(url: str) -> float:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE events (order_id text, provider_event_id text, status text, amount bigint,"
                           " occurred_at timestamptz, UNIQUE (order_id, provider_event_id))")
        now = dt.datetime.now(dt.UTC)
        rows = [(f"order-{i % 1000}", f"pe-{i}", "paid", 1000, now) for i in range(ROWS)]
        started = time.perf_counter()
        async with conn.transaction():
            await conn.executemany("INSERT INTO events VALUES ($1, $2, $3, $4, $5)", rows)
        return ROWS / (time.perf_counter() - started)
    finally:
        await conn.close()


async def run() -> list[Ceiling]:
    async with open_embedded_broker() as bootstrap, open_embedded_postgres() as pg_port, \
            open_asyncio_loop() as loop:
        produce = await trio.to_thread.run_sync(_produce, bootstrap)
        await create_databases(pg_port, ["ceiling"])
        insert = await loop.run_aio_coroutine(_executemany(dsn(pg_port, "ceiling")))
    return [Ceiling("raw produce to the broker (idempotent, acks=all)", produce, "records/s"),
            Ceiling("PostgreSQL executemany, one transaction (fsync on)", insert, "rows/s")]


def table(ceilings: list[Ceiling]) -> str:
    lines = ["| ceiling | rate |", "|---|---:|"]
    lines += [f"| {c.name} | {c.per_second:,.0f} {c.unit} |" for c in ceilings]
    return "\n".join(lines)
