"""Benchmark: applied updates/s through ``/internal/updates/orders``.

One embedded PostgreSQL (fsync on, two shard databases), one api process per
variant — writer actor (``API_WRITER=batch``) vs one transaction per request
(``direct``), JSON vs Protobuf — and k6 posting unique updates from 50 VUs. Every
request is a new event of one of 1,000 orders, so each 200 is a stored row.
CPU seconds of the api and of PostgreSQL during the run show which one is the bottleneck.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil
import trio
import trio_asyncio

from shared.protobuf_codec import to_protobuf
from shared.messages import OrderUpdate, encode_json
from shared.migrations import migrate_dsn
from shared.sharding import shard_for
from webhooks.bench.k6 import LoadResult, run_k6
from webhooks.child_process import ChildProcess, open_child
from webhooks.devstack import wait_ready
from webhooks.embedded import create_databases, dsn, free_port, open_embedded_postgres

ORDERS = 1_000
TOKEN = "bench-internal-token"
VARIANTS = (("batch", "json"), ("batch", "protobuf"), ("direct", "json"), ("direct", "protobuf"))


@dataclass(frozen=True)
class Row:
    writer: str
    encoding: str
    load: LoadResult
    api_cpu: float  # share of one core
    postgres_cpu: float


def make_updates(count: int, seed: int) -> list[OrderUpdate]:
    rng = random.Random(seed)
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    now = dt.datetime.now(dt.UTC)
    updates = []
    for index in range(count):
        order = rng.randrange(ORDERS)
        updates.append(OrderUpdate(
            provider_event_id=f"bench-{seed}-{index}", order_id=f"order-{order}", user_id=f"user-{order}",
            status="paid", amount=1000, currency="EUR", occurred_at=start + dt.timedelta(milliseconds=index),
            event_id=f"ev-{seed}-{index}", received_at=now, correlation_id=f"bench-{index}"))
    return updates


def encode_bodies(updates: list[OrderUpdate], encoding: str) -> list[str]:
    if encoding == "protobuf":
        return [base64.b64encode(to_protobuf(u).SerializeToString()).decode() for u in updates]
    return [encode_json(u).decode() for u in updates]


async def _seed_orders(url: str, shard: int, shards: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        rows = [(f"order-{i}", f"user-{i}") for i in range(ORDERS) if shard_for(f"user-{i}", shards) == shard]
        await conn.executemany(
            "INSERT INTO orders (order_id, user_id, status, amount, currency) VALUES ($1, $2, 'created', 1000, 'EUR')",
            rows)
    finally:
        await conn.close()


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def _postgres_processes(port: int) -> list[psutil.Process]:
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "postgres" and str(port) in (process.info["cmdline"] or []):
            return [process, *process.children(recursive=True)]
    return []


async def _run_variant(loop: trio_asyncio.TrioEventLoop, pg_port: int, writer: str, encoding: str, vus: int,
                       duration: str, workdir: Path, tag: str) -> Row:
    names = [f"bench_{tag}_{shard}" for shard in range(2)]
    await create_databases(pg_port, names)
    urls = [dsn(pg_port, name) for name in names]
    for shard, url in enumerate(urls):
        await loop.run_aio_coroutine(migrate_dsn(url, dt.date.today()))
        await loop.run_aio_coroutine(_seed_orders(url, shard, len(urls)))
    bodies = workdir / f"{tag}.json"
    bodies.write_text(json.dumps(encode_bodies(make_updates(vus * 2_500, int(tag[1:])), encoding)))
    port = free_port()
    env = {"DATABASE_URLS": ",".join(urls), "API_PORT": str(port), "INTERNAL_TOKEN": TOKEN,
           "API_TOKENS": "bench-public-token", "API_WRITER": writer, "LOG_LEVEL": "warning", "PATH": "/usr/bin:/bin"}
    async with open_child([sys.executable, "-m", "api"], env=env) as api:
        await wait_ready(f"http://127.0.0.1:{port}/readyz", api)
        content_type = "application/x-protobuf" if encoding == "protobuf" else "application/json"
        measured = [psutil.Process(api.pid)], _postgres_processes(pg_port)
        before = [_cpu_seconds(group) for group in measured]
        load = await run_k6("post_bodies.js", {
            "URL": f"http://127.0.0.1:{port}/internal/updates/orders", "BODIES_FILE": str(bodies),
            "BINARY": "1" if encoding == "protobuf" else "0", "VUS": str(vus), "DURATION": duration,
            "HEADERS": json.dumps({"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type})})
        after = [_cpu_seconds(group) for group in measured]
    return Row(writer, encoding, load, (after[0] - before[0]) / load.seconds, (after[1] - before[1]) / load.seconds)


async def run(vus: int, duration: str, workdir: Path, progress: Callable[[str], None]) -> list[Row]:
    rows = []
    async with open_embedded_postgres() as pg_port, trio_asyncio.open_loop() as loop:
        for index, (writer, encoding) in enumerate(VARIANTS):
            progress(f"api writes: writer={writer} encoding={encoding} ({index + 1}/{len(VARIANTS)})")
            rows.append(await _run_variant(loop, pg_port, writer, encoding, vus, duration, workdir, f"v{index}"))
    return rows


def table(rows: list[Row], vus: int) -> str:
    lines = [f"Applied updates/s through `/internal/updates/orders`, {vus} concurrent clients (k6), "
             "one api process, PostgreSQL with fsync on, 2 shards.",
             "",
             "| writer | encoding | applied/s | p50 ms | p95 ms | p99 ms | non-200 | api CPU | postgres CPU |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        load = row.load
        lines.append(f"| {row.writer} | {row.encoding} | {load.ok_per_second:,.0f} | {load.p50_ms:.1f} | "
                     f"{load.p95_ms:.1f} | {load.p99_ms:.1f} | {load.failed} | {row.api_cpu:.0%} | "
                     f"{row.postgres_cpu:.0%} |")
    best = {(r.writer, r.encoding): r.load.ok_per_second for r in rows}
    for encoding in ("json", "protobuf"):
        if best.get(("direct", encoding)):
            lines.append(f"\nwriter actor vs one transaction per request ({encoding}): "
                         f"{best[('batch', encoding)] / best[('direct', encoding)]:.1f}×")
    return "\n".join(lines)
