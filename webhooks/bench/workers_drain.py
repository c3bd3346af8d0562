"""Benchmark: draining a pre-filled topic into PostgreSQL, and end-to-end latency at a steady rate.

Drain: 100 k order events of 1,000 users (each user's pending → authorized → paid,
then same-status events: every one valid and stored) are produced first; then 1 or 2
worker processes — or the naive consumer (one transaction and one commit per
message, on a 10 k slice: it is slow) — consume them into PostgreSQL (fsync on,
2 shards). Rate = events stored / time from the first to the last stored row.

Latency: ingest (kafka mode) and 2 worker processes; k6 posts signed webhooks at a
steady rate; each event's latency is its row's ``stored_at − received_at``.

Unknown orders (the per-user retry lanes): the 2-process drain again with every 100th
record for an order that does not exist, and the steady run again with ~3 % of the
webhooks so; each is for a user who also has known events, which wait behind it in
that user's lane until ``WORKER_NOT_FOUND_WINDOW`` dead-letters it. The drain is done
when every known event is stored; latency is reported for the other users' events.
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
import msgspec
import trio
import trio_asyncio
from confluent_kafka import Producer

from ingest.signatures import sign
from shared.asyncio_loop import open_asyncio_loop
from shared.envelope import TraceContext, build_envelope, record_headers
from shared.messages import OrderWebhook, encode_json
from shared.topics import ALL_TOPICS, ORDERS, admin_client, create_topics
from webhooks.bench.ingest_modes import SECRET, WHSEC
from webhooks.bench.k6 import run_k6
from webhooks.bench.stack import ORDERS as USERS
from webhooks.bench.stack import group_settled, seeded_shards, service
from webhooks.child_process import open_child
from webhooks.embedded import free_port, open_embedded_broker, open_embedded_postgres

EVENTS = 100_000
NAIVE_EVENTS = 10_000
PARTITIONS = 6
STEADY_RATE = 300
STEADY_VUS = 32
# post_bodies.js hands each of its 4 × VUS slots an equal slice of the list and a VU wraps round
# its slice: 160 each outlasts a VU's 12 s even when k6 runs only the 32 pre-allocated VUs
# (~113 each), so no webhook is posted twice whatever number of VUs k6 ends up using.
STEADY_REQUESTS = 4 * STEADY_VUS * 160
WARM_UP_SECONDS = 2
NOT_FOUND_WINDOW = "5s"  # WORKER_NOT_FOUND_WINDOW, passed explicitly (the default)
DRAIN_UNKNOWN_EVERY = 100  # 1 % of the drain's records
STEADY_UNKNOWN_USERS = frozenset(range(0, USERS, 33))  # 31 users: ~3 % of the steady webhooks


@dataclass(frozen=True)
class DrainRow:
    consumer: str
    events: int  # stored
    seconds: float
    unknown: int = 0  # records for orders that do not exist (never stored)
    blocking: bool = True  # the unknown ones' users have later events (which wait), else strangers

    @property
    def per_second(self) -> float:
        return self.events / self.seconds


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float
    events: int  # stored rows measured (after the warm-up)


@dataclass(frozen=True)
class SteadyRun:
    posted: int  # webhooks k6 got a 202 for
    stored: int  # rows written: posted − not_found unless something went wrong
    not_found: int  # dead-lettered as not_found
    others: Latency  # users without an unknown-order webhook (all users in the clean run)
    waiting: Latency | None  # users with one: their later events wait in their lane


def _events(count: int) -> list[OrderWebhook]:
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    lifecycle = ["pending", "authorized", "paid"]
    return [OrderWebhook(provider_event_id=f"drain-{i}", order_id=f"order-{i % USERS}", user_id=f"user-{i % USERS}",
                         status=lifecycle[min(i // USERS, 2)], amount=1000, currency="EUR",
                         occurred_at=start + dt.timedelta(seconds=i // USERS)) for i in range(count)]


def _drain_events(count: int, unknown_every: int | None, blocking: bool = True) -> list[OrderWebhook]:
    """``count`` records: the clean drain's events, or with every ``unknown_every``-th one for an order that
    does not exist — of the user of the event before it (``blocking``: that user's later events wait behind
    it; each user once), or of a user with nothing else in the stream (a stranger: nobody waits)."""
    if unknown_every is None:
        return _events(count)
    stream = []
    for index, event in enumerate(_events(count - count // unknown_every)):
        stream.append(event)
        if (index + 1) % (unknown_every - 1) == 0:
            user = event.user_id if blocking else f"stranger-{index}"
            stream.append(msgspec.structs.replace(event, provider_event_id=f"drain-unknown-{index}",
                                                  order_id=f"missing-{index}", user_id=user))
    return stream


def _signed(body: dict[str, object], webhook_id: str, timestamp: int) -> tuple[str, dict[str, str]]:
    text = json.dumps(body)
    return text, {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
                  "webhook-signature": sign(SECRET, webhook_id, timestamp, text.encode())}


def unique_paid_requests(count: int, run_id: str, unknown_users: frozenset[int] = frozenset()
                         ) -> list[tuple[str, dict[str, str]]]:
    """``count`` signed "paid" webhooks of the seeded orders, each a new event: every one is stored.

    With ``unknown_users``, each request just before one of theirs (k6 posts a slice in order) is
    replaced by one of that user for an order that does not exist: the known one waits behind it."""
    start, timestamp = dt.datetime(2026, 11, 1, tzinfo=dt.UTC), int(time.time())
    requests = []
    for index in range(count):
        n, order = index % USERS, f"order-{index % USERS}"
        if (index + 1) % USERS in unknown_users:
            n, order = (index + 1) % USERS, f"missing-{run_id}-{index}"
        body = {"provider_event_id": f"{run_id}-{index}", "order_id": order, "user_id": f"user-{n}",
                "status": "paid", "amount": 1000, "currency": "EUR",
                "occurred_at": (start + dt.timedelta(milliseconds=index)).isoformat()}
        requests.append(_signed(body, f"msg_{run_id}_{index}", timestamp))
    return requests


def prefill(bootstrap: str, topic: str, events: list[OrderWebhook]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20,
                         "batch.num.messages": 10_000})
    now = dt.datetime.now(dt.UTC)
    trace = TraceContext.from_header(None)
    for event in events:
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
                 count: int, progress: Callable[[str], None], unknown_every: int | None = None,
                 blocking: bool = True) -> DrainRow:
    prefix = f"drain{uuid.uuid4().hex[:6]}."
    await trio.to_thread.run_sync(create_topics, admin_client(bootstrap), [prefix + t for t in ALL_TOPICS], PARTITIONS)
    tag = name.replace("-", "_") + ("" if not unknown_every else "_blocking" if blocking else "_strangers")
    urls = await seeded_shards(loop, pg_port, f"drain_{tag}")
    events = _drain_events(count, unknown_every, blocking)
    known = sum(event.order_id.startswith("order-") for event in events)
    progress(f"workers: {name}: producing {count:,} events ({count - known:,} for unknown orders)")
    await trio.to_thread.run_sync(prefill, bootstrap, prefix + ORDERS, events)
    env = {"PATH": "/usr/bin:/bin", "LOG_LEVEL": "warning", "DATABASE_URLS": ",".join(urls),
           **({"WORKER_MAX_BATCH": os.environ["WORKER_MAX_BATCH"]} if "WORKER_MAX_BATCH" in os.environ else {}),
           "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TOPIC_PREFIX": prefix, "KAFKA_SESSION_TIMEOUT": "2s",
           "WORKER_NOT_FOUND_WINDOW": NOT_FOUND_WINDOW}
    progress(f"workers: {name}: draining")
    async with AsyncExitStack() as stack:
        for _ in range(processes):
            if name == "naive":
                argv = [sys.executable, "-m", "webhooks.bench.naive_consumer", prefix + ORDERS]
                await stack.enter_async_context(open_child(argv, env=env))
            else:
                port = free_port()
                await stack.enter_async_context(service(["-m", "workers"], {**env, "WORKERS_PORT": str(port)}, port))
        with trio.fail_after(600):  # the unknown ones are never stored: done once every known one is
            while (stored := await _stored(loop, urls))[0] < known:
                await trio.sleep(0.5)
    return DrainRow(name, stored[0], stored[1], count - known, blocking)


async def _steady_latency(loop: trio_asyncio.TrioEventLoop, pg_port: int, bootstrap: str, workdir: Path,
                          progress: Callable[[str], None], unknown_users: frozenset[int] = frozenset()) -> SteadyRun:
    prefix = f"steady{uuid.uuid4().hex[:6]}."
    await trio.to_thread.run_sync(create_topics, admin_client(bootstrap), [prefix + t for t in ALL_TOPICS], PARTITIONS)
    urls = await seeded_shards(loop, pg_port, "steady_unknown" if unknown_users else "steady")
    env = {"DATABASE_URLS": ",".join(urls), "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TOPIC_PREFIX": prefix,
           "KAFKA_SESSION_TIMEOUT": "2s", "WEBHOOK_SECRETS": WHSEC, "WORKER_NOT_FOUND_WINDOW": NOT_FOUND_WINDOW}
    ingest_port = free_port()
    async with AsyncExitStack() as stack:
        worker_ports = [free_port() for _ in range(2)]
        for port in worker_ports:
            await stack.enter_async_context(service(["-m", "workers"], {**env, "WORKERS_PORT": str(port)}, port))
        await _wait_group_settled(worker_ports, prefix + ORDERS)
        await stack.enter_async_context(service(["-m", "ingest"], {**env, "INGEST_PORT": str(ingest_port)},
                                                ingest_port))
        run_id = "steadyunknown" if unknown_users else "steady"
        requests_file = workdir / f"{run_id}.json"
        requests_file.write_text(json.dumps(unique_paid_requests(STEADY_REQUESTS, run_id, unknown_users)))
        progress(f"workers: end-to-end latency at {STEADY_RATE} webhooks/s"
                 + (f", {len(unknown_users)} users with unknown-order webhooks" if unknown_users else ""))
        load = await run_k6("post_bodies.js", {
            "URL": f"http://127.0.0.1:{ingest_port}/webhooks/payments/orders", "BODIES_FILE": str(requests_file),
            "HEADERS": json.dumps({"content-type": "application/json"}), "VUS": str(STEADY_VUS), "DURATION": "12s",
            "RATE": str(STEADY_RATE), "OK_STATUS": "202"})
        await _wait_settled(loop, urls, worker_ports, prefix + ORDERS)
        not_found = sum([await _metric(port, "worker_dead_letters_total", prefix + ORDERS, 'reason="not_found"')
                         for port in worker_ports])
    others, waiting = await _latency(loop, urls, [f"order-{n}" for n in sorted(unknown_users)])
    stored = (await _stored(loop, urls))[0]
    return SteadyRun(load.ok, stored, not_found, others, waiting if unknown_users else None)


async def _metric(port: int, name: str, topic: str, label: str = "") -> int:
    """A worker's series ``name`` of ``topic``, summed over the rest of its labels (those holding ``label``)."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith(name + "{") and f'"{topic}"' in line and label in line)


async def _wait_group_settled(ports: list[int], topic: str) -> None:
    """Until every worker owns partitions and together all of them: the rebalance is over."""
    async with httpx.AsyncClient() as client:
        with trio.fail_after(60):
            while True:
                texts = [(await client.get(f"http://127.0.0.1:{port}/metrics")).text for port in ports]
                if group_settled(texts, topic, PARTITIONS):
                    return
                await trio.sleep(0.2)


async def _wait_settled(loop: trio_asyncio.TrioEventLoop, urls: list[str], ports: list[int], topic: str) -> None:
    """Until the retry lanes are empty and no new row appears for a second (k6 may resend a few:
    duplicates are not stored twice)."""
    with trio.fail_after(120):
        previous = -1
        while (count := (await _stored(loop, urls))[0]) != previous or \
                sum([await _metric(port, "worker_retry_lane_events", topic) for port in ports]):
            previous = count
            await trio.sleep(1.0)


def _percentiles(seconds: list[float]) -> Latency:
    if not seconds:
        return Latency(float("nan"), float("nan"), 0)
    seconds = sorted(seconds)
    return Latency(seconds[len(seconds) // 2] * 1000, seconds[int(len(seconds) * 0.99)] * 1000, len(seconds))


async def _latency(loop: trio_asyncio.TrioEventLoop, urls: list[str], waiting_orders: list[str]
                   ) -> tuple[Latency, Latency]:
    """Percentiles of the other orders' rows, and of ``waiting_orders``' rows."""
    rows: list[tuple[bool, float]] = []

    async def fetch(url: str) -> list[tuple[bool, float]]:
        conn = await asyncpg.connect(url)
        try:
            found = await conn.fetch(  # after a warm-up: the first second opens every connection
                "SELECT order_id = ANY($2::text[]), extract(epoch FROM stored_at - received_at) FROM order_events"
                " WHERE received_at >= (SELECT min(received_at) FROM order_events) + $1 * interval '1 second'",
                WARM_UP_SECONDS, waiting_orders)
            return [(row[0], float(row[1])) for row in found]
        finally:
            await conn.close()

    for url in urls:
        rows += await loop.run_aio_coroutine(fetch(url))
    return (_percentiles([seconds for waits, seconds in rows if not waits]),
            _percentiles([seconds for waits, seconds in rows if waits]))


async def run(workdir: Path, progress: Callable[[str], None]) -> tuple[list[DrainRow], list[SteadyRun]]:
    """The drains (the last: workers-2 with unknown orders), then the steady runs: clean, with unknown orders."""
    rows = []
    async with open_embedded_postgres() as pg_port, open_embedded_broker() as bootstrap, \
            open_asyncio_loop() as loop:
        for name, processes, count, unknown_every, blocking in (
                ("naive", 1, NAIVE_EVENTS, None, True), ("workers-1", 1, EVENTS, None, True),
                ("workers-2", 2, EVENTS, None, True), ("workers-2", 2, EVENTS, DRAIN_UNKNOWN_EVERY, False),
                ("workers-2", 2, EVENTS, DRAIN_UNKNOWN_EVERY, True)):
            rows.append(await _drain(loop, pg_port, bootstrap, name, processes, count, progress, unknown_every,
                                     blocking))
        steady = [await _steady_latency(loop, pg_port, bootstrap, workdir, progress, users)
                  for users in (frozenset(), STEADY_UNKNOWN_USERS)]
    return rows, steady


def table(rows: list[DrainRow], steady: list[SteadyRun]) -> str:
    naive = next(row.per_second for row in rows if row.consumer == "naive")
    clean = {row.consumer: row.per_second for row in rows if not row.unknown}
    lines = [f"Draining a pre-filled topic ({PARTITIONS} partitions, 1,000 users) into PostgreSQL "
             "(fsync on, 2 shards).",
             "", "| consumer | events | events/s | vs naive | vs clean |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        label, versus = row.consumer, ""
        if row.unknown:
            share = row.unknown / (row.events + row.unknown)
            whose = "every user's later events wait behind one" if row.blocking else "of users with nothing queued"
            label += f", {share:.0%} unknown orders {whose} (window {NOT_FOUND_WINDOW})"
            versus = f"{row.per_second / clean[row.consumer]:.0%}"
        lines.append(f"| {label} | {row.events:,} | {row.per_second:,.0f} | {row.per_second / naive:.1f}× "
                     f"| {versus} |")
    lines += ["", f"Unknown orders: the same {EVENTS:,} records, but every {DRAIN_UNKNOWN_EVERY}th is for an order "
                  "that "
                  "does not exist — of a user with nothing else in the stream (nobody waits behind it), or of the "
                  "user of the record before it (each user once: that user's later events, ~85 each, wait in its "
                  "retry lane until the window dead-letters it as `not_found`, so per-user order bounds that drain "
                  "by the window). Events = the known events, all stored; rate as above; vs clean = against the "
                  "clean drain of the same process count, this run (target ≥ 80 %)."]
    clean_run, unknown_run = steady
    p50, p99, count = clean_run.others.p50_ms, clean_run.others.p99_ms, clean_run.posted
    lines += ["", f"End-to-end latency (ingest `received_at` → row written), {count:,} webhooks at a steady "
                  f"{STEADY_RATE}/s for 12 s (the first {WARM_UP_SECONDS} s of warm-up left out) through ingest "
                  f"(kafka mode) and 2 worker processes: p50 {p50:.0f} ms, p99 {p99:.0f} ms."]
    share = unknown_run.not_found / unknown_run.posted
    lines += ["", f"The same steady run again with {share:.1%} of the webhooks posted ({unknown_run.not_found:,} of "
                  f"{unknown_run.posted:,}; {unknown_run.stored:,} stored) for orders that do not exist (window "
                  f"{NOT_FOUND_WINDOW}): each is posted just before a webhook of the same user, by the same k6 VU; "
                  f"{len(STEADY_UNKNOWN_USERS)} users have them, so their later events wait in their lane. "
                  f"Other users = everyone else's stored events (target p99 ≤ 1.5× clean). "
                  f"Clean run: {clean_run.posted:,} posted, "
                  f"{clean_run.stored:,} stored.", "",
              "| run | events of | events measured | p50 ms | p99 ms | p99 vs clean |", "|---|---|---:|---:|---:|---:|"]
    for run, users, latency in (("clean", "all users", clean_run.others),
                                (f"{share:.0%} unknown", "other users", unknown_run.others),
                                (f"{share:.0%} unknown", "users with unknown orders", unknown_run.waiting)):
        if latency is not None:
            lines.append(f"| {run} | {users} | {latency.events:,} | {latency.p50_ms:.0f} | {latency.p99_ms:.0f} "
                         f"| {latency.p99_ms / clean_run.others.p99_ms:.2f}× |")
    return "\n".join(lines)
