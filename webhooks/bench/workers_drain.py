"""Benchmark: draining a pre-filled topic into PostgreSQL, and end-to-end latency at a steady rate.

Drain: 100 k order events of 1,000 users (each user's pending → authorized → paid,
then same-status events: every one valid and stored) are produced first; then 1 or 2
worker processes — or the naive consumer (one transaction and one commit per
message, on a 10 k slice: it is slow) — consume them into PostgreSQL (fsync on,
2 shards). Rate = events stored / time from the first to the last stored row.

Latency: ingest (kafka mode) and 2 worker processes; k6 posts signed webhooks at a
steady rate; each event's latency is its row's ``stored_at − received_at``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import trio
import trio_asyncio
from confluent_kafka import Producer

from shared.envelope import TraceContext, build_envelope, record_headers
from shared.messages import OrderWebhook, encode_json
from shared.topics import ALL_TOPICS, ORDERS, admin_client, create_topics
from ingest.signatures import sign
from webhooks.bench.ingest_modes import SECRET, WHSEC
from webhooks.bench.k6 import run_k6
from webhooks.bench.stack import ORDERS as USERS
from webhooks.bench.stack import seeded_shards, service
from webhooks.child_process import open_child
from webhooks.embedded import free_port, open_embedded_broker, open_embedded_postgres

EVENTS = 100_000
NAIVE_EVENTS = 10_000
PARTITIONS = 6
STEADY_RATE = 300
WARM_UP_SECONDS = 2


@dataclass(frozen=True)
class DrainRow:
    consumer: str
    events: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds


def _events(count: int) -> list[OrderWebhook]:
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    lifecycle = ["pending", "authorized", "paid"]
    return [OrderWebhook(provider_event_id=f"drain-{i}", order_id=f"order-{i % USERS}", user_id=f"user-{i % USERS}",
                         status=lifecycle[min(i // USERS, 2)], amount=1000, currency="EUR",
                         occurred_at=start + dt.timedelta(seconds=i // USERS)) for i in range(count)]


def unique_paid_requests(count: int, run_id: str) -> list[tuple[str, dict[str, str]]]:
    """``count`` signed "paid" webhooks of the seeded orders, each a new event: every one is stored."""
    start, timestamp = dt.datetime(2026, 11, 1, tzinfo=dt.UTC), int(time.time())
    requests = []
    for index in range(count):
        n = index % USERS
        body = json.dumps({"provider_event_id": f"{run_id}-{index}", "order_id": f"order-{n}", "user_id": f"user-{n}",
                           "status": "paid", "amount": 1000, "currency": "EUR",
                           "occurred_at": (start + dt.timedelta(milliseconds=index)).isoformat()})
        webhook_id = f"msg_{run_id}_{index}"
        requests.append((body, {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
                                "webhook-signature": sign(SECRET, webhook_id, timestamp, body.encode())}))
    return requests


def prefill(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20,
                         "batch.num.messages": 10_000})
    now = dt.datetime.now(dt.UTC)
    trace = TraceContext.from_header(None)
    for event in _events(count):
        envelope = build_envelope(event, now, "bench", trace)
        while True:
            try:
                producer.produce(topic, encode_json(envelope), event.user_id.encode(),
                                 headers=record_headers(envelope, trace))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(120) == 0


async def _stored(loop: trio_asyncio.TrioEventLoop, urls: list[str]) -> tuple[int, float]:
    """(rows, seconds from the first to the last stored row) over all shards."""
    async def one(url: str) -> tuple[int, dt.datetime | None, dt.datetime | None]:
        conn = await asyncpg.connect(url)
        try:
            row = await conn.fetchrow("SELECT count(*), min(stored_at), max(stored_at) FROM order_events")
            return row[0], row[1], row[2]
        finally:
            await conn.close()

    results = [await loop.run_aio_coroutine(one(url)) for url in urls]
    firsts = [r[1] for r in results if r[1]]
    lasts = [r[2] for r in results if r[2]]
    span = (max(lasts) - min(firsts)).total_seconds() if firsts else 0.0
    return sum(r[0] for r in results), span


async def _drain(loop: trio_asyncio.TrioEventLoop, pg_port: int, bootstrap: str, name: str, processes: int,
                 count: int, progress: Callable[[str], None]) -> DrainRow:
    prefix = f"drain{uuid.uuid4().hex[:6]}."
    await trio.to_thread.run_sync(create_topics, admin_client(bootstrap), [prefix + t for t in ALL_TOPICS], PARTITIONS)
    urls = await seeded_shards(loop, pg_port, f"drain_{name.replace('-', '_')}")
    progress(f"workers: {name}: producing {count:,} events")
    await trio.to_thread.run_sync(prefill, bootstrap, prefix + ORDERS, count)
    env = {"PATH": "/usr/bin:/bin", "LOG_LEVEL": "warning", "DATABASE_URLS": ",".join(urls),
           **({"WORKER_MAX_BATCH": os.environ["WORKER_MAX_BATCH"]} if "WORKER_MAX_BATCH" in os.environ else {}),
           "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TOPIC_PREFIX": prefix, "KAFKA_SESSION_TIMEOUT": "2s"}
    progress(f"workers: {name}: draining")
    async with AsyncExitStack() as stack:
        for _ in range(processes):
            if name == "naive":
                argv = [sys.executable, "-m", "webhooks.bench.naive_consumer", prefix + ORDERS]
                await stack.enter_async_context(open_child(argv, env=env))
            else:
                port = free_port()
                await stack.enter_async_context(service(["-m", "workers"], {**env, "WORKERS_PORT": str(port)}, port))
        with trio.fail_after(600):
            while (stored := await _stored(loop, urls))[0] < count:
                await trio.sleep(0.5)
    return DrainRow(name, stored[0], stored[1])


async def _steady_latency(loop: trio_asyncio.TrioEventLoop, pg_port: int, bootstrap: str, workdir: Path,
                          progress: Callable[[str], None]) -> tuple[float, float, int]:
    prefix = f"steady{uuid.uuid4().hex[:6]}."
    await trio.to_thread.run_sync(create_topics, admin_client(bootstrap), [prefix + t for t in ALL_TOPICS], PARTITIONS)
    urls = await seeded_shards(loop, pg_port, "steady")
    env = {"DATABASE_URLS": ",".join(urls), "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TOPIC_PREFIX": prefix,
           "KAFKA_SESSION_TIMEOUT": "2s", "WEBHOOK_SECRETS": WHSEC}
    ingest_port = free_port()
    async with AsyncExitStack() as stack:
        worker_ports = [free_port() for _ in range(2)]
        for port in worker_ports:
            await stack.enter_async_context(service(["-m", "workers"], {**env, "WORKERS_PORT": str(port)}, port))
        await _wait_group_settled(worker_ports, prefix + ORDERS)
        await stack.enter_async_context(service(["-m", "ingest"], {**env, "INGEST_PORT": str(ingest_port)},
                                                ingest_port))
        requests_file = workdir / "steady.json"
        requests_file.write_text(json.dumps(unique_paid_requests(STEADY_RATE * 14, "steady")))
        progress(f"workers: end-to-end latency at {STEADY_RATE} webhooks/s")
        load = await run_k6("post_bodies.js", {
            "URL": f"http://127.0.0.1:{ingest_port}/webhooks/payments/orders", "BODIES_FILE": str(requests_file),
            "HEADERS": json.dumps({"content-type": "application/json"}), "VUS": "32", "DURATION": "12s",
            "RATE": str(STEADY_RATE), "OK_STATUS": "202"})
        await _wait_settled(loop, urls)
    return await _latency(loop, urls) + (load.ok,)


async def _assigned(port: int, topic: str) -> int:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("worker_assigned_partitions{") and f'"{topic}"' in line)


async def _wait_group_settled(ports: list[int], topic: str) -> None:
    """Until every worker owns partitions and together all of them: the rebalance is over."""
    with trio.fail_after(60):
        while True:
            counts = [await _assigned(port, topic) for port in ports]
            if min(counts) > 0 and sum(counts) == PARTITIONS:
                return
            await trio.sleep(0.2)


async def _wait_settled(loop: trio_asyncio.TrioEventLoop, urls: list[str]) -> None:
    """Until no new row appears for a second (k6 may resend a few: duplicates are not stored twice)."""
    with trio.fail_after(120):
        previous = -1
        while (count := (await _stored(loop, urls))[0]) != previous:
            previous = count
            await trio.sleep(1.0)


async def _latency(loop: trio_asyncio.TrioEventLoop, urls: list[str]) -> tuple[float, float]:
    latencies: list[float] = []

    async def fetch(url: str) -> list[float]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(  # after a warm-up: the first second opens every connection
                "SELECT extract(epoch FROM stored_at - received_at) FROM order_events"
                " WHERE received_at >= (SELECT min(received_at) FROM order_events) + $1 * interval '1 second'",
                WARM_UP_SECONDS)
            return [float(row[0]) for row in rows]
        finally:
            await conn.close()

    for url in urls:
        latencies += await loop.run_aio_coroutine(fetch(url))
    latencies.sort()
    return latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.99)] * 1000


async def run(workdir: Path, progress: Callable[[str], None]) -> tuple[list[DrainRow], tuple[float, float, int]]:
    rows = []
    async with open_embedded_postgres() as pg_port, open_embedded_broker() as bootstrap, \
            trio_asyncio.open_loop() as loop:
        for name, processes, count in (("naive", 1, NAIVE_EVENTS), ("workers-1", 1, EVENTS),
                                       ("workers-2", 2, EVENTS)):
            rows.append(await _drain(loop, pg_port, bootstrap, name, processes, count, progress))
        latency = await _steady_latency(loop, pg_port, bootstrap, workdir, progress)
    return rows, latency


def table(rows: list[DrainRow], latency: tuple[float, float, int]) -> str:
    naive = next(row.per_second for row in rows if row.consumer == "naive")
    lines = [f"Draining a pre-filled topic ({PARTITIONS} partitions, 1,000 users) into PostgreSQL (fsync on, 2 shards).",
             "", "| consumer | events | events/s | vs naive |", "|---|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row.consumer} | {row.events:,} | {row.per_second:,.0f} | {row.per_second / naive:.1f}× |")
    p50, p99, count = latency
    lines += ["", f"End-to-end latency (ingest `received_at` → row written), {count:,} webhooks at a steady "
                  f"{STEADY_RATE}/s for 12 s (the first {WARM_UP_SECONDS} s of warm-up left out) through ingest (kafka mode) "
                  f"and 2 worker processes: p50 {p50:.0f} ms, p99 {p99:.0f} ms."]
    return "\n".join(lines)
