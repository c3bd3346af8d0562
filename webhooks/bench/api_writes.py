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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import trio_asyncio

from shared.asyncio_loop import open_asyncio_loop
from shared.messages import OrderUpdate, encode_json
from shared.protobuf_codec import to_protobuf
from webhooks.bench.k6 import LoadResult, run_k6
from webhooks.bench.stack import ORDERS, cpu_seconds, postgres_processes, seeded_shards, service
from webhooks.embedded import free_port, open_embedded_postgres

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


def encode_bodies(updates: list[OrderUpdate], encoding: str) -> list[tuple[str, dict[str, str]]]:
    if encoding == "protobuf":
        return [(base64.b64encode(to_protobuf(u).SerializeToString()).decode(), {}) for u in updates]
    return [(encode_json(u).decode(), {}) for u in updates]


async def _run_variant(loop: trio_asyncio.TrioEventLoop, pg_port: int, writer: str, encoding: str, vus: int,
                       duration: str, workdir: Path, tag: str) -> Row:
    urls = await seeded_shards(loop, pg_port, tag)
    bodies = workdir / f"{tag}.json"
    bodies.write_text(json.dumps(encode_bodies(make_updates(vus * 2_500, int(tag[1:])), encoding)))
    port = free_port()
    env = {"DATABASE_URLS": ",".join(urls), "API_PORT": str(port), "INTERNAL_TOKEN": TOKEN,
           "API_TOKENS": "bench-public-token", "API_WRITER": writer}
    async with service(["-m", "api"], env, port) as api:
        content_type = "application/x-protobuf" if encoding == "protobuf" else "application/json"
        measured = [psutil.Process(api.pid)], postgres_processes(pg_port)
        before = [cpu_seconds(group) for group in measured]
        load = await run_k6("post_bodies.js", {
            "URL": f"http://127.0.0.1:{port}/internal/updates/orders", "BODIES_FILE": str(bodies),
            "BINARY": "1" if encoding == "protobuf" else "0", "VUS": str(vus), "DURATION": duration,
            "HEADERS": json.dumps({"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type})})
        after = [cpu_seconds(group) for group in measured]
    return Row(writer, encoding, load, (after[0] - before[0]) / load.seconds, (after[1] - before[1]) / load.seconds)


async def run(vus: int, duration: str, workdir: Path, progress: Callable[[str], None]) -> list[Row]:
    rows = []
    async with open_embedded_postgres() as pg_port, open_asyncio_loop() as loop:
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
