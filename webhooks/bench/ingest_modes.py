"""Benchmark: signed webhooks/s through ingest, per mode, next to the server's own ceiling.

Targets — a bare ASGI app on the same hypercorn-trio setup (the ceiling of one
process), ingest in kafka mode (202 after the broker's ack), ingest in http mode
(JSON or Protobuf to a real api, which writes to PostgreSQL) — all run at once and
are measured in alternating rounds, so machine noise hits them alike; the peak of
each is the median of its rounds. Then each is offered 80 % of its peak at a
constant arrival rate: the p99 there is what a provider sees on a busy day.

The webhooks are signed in Python beforehand, so k6 (on the same 2 cores) only posts.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio
import trio_asyncio

from ingest.signatures import sign
from shared.topics import ALL_TOPICS, admin_client, create_topics
from webhooks.bench.k6 import LoadResult, run_k6
from webhooks.bench.stack import ORDERS, seeded_shards, service
from webhooks.embedded import free_port, open_embedded_broker, open_embedded_postgres

SECRET = b"bench-secret-0123456789abcdef"
WHSEC = "whsec_" + base64.b64encode(SECRET).decode()
TOKEN = "bench-internal-token"
TARGETS = ("bare-asgi", "kafka", "http-json", "http-protobuf", "grpc")
ROUNDS = 3


@dataclass(frozen=True)
class Row:
    target: str
    peaks: list[LoadResult]
    at_80: LoadResult

    @property
    def peak(self) -> LoadResult:
        return sorted(self.peaks, key=lambda r: r.ok_per_second)[len(self.peaks) // 2]


def signed_requests(count: int, run_id: str) -> list[tuple[str, dict[str, str]]]:
    """``count`` unique order webhooks for the seeded orders, signed now (valid for 5 minutes)."""
    start, timestamp = dt.datetime(2026, 11, 1, tzinfo=dt.UTC), int(time.time())
    requests = []
    for index in range(count):
        n = index % ORDERS
        body = json.dumps({
            "provider_event_id": f"{run_id}-{index}", "order_id": f"order-{n}", "user_id": f"user-{n}",
            "status": "paid", "amount": 1000, "currency": "EUR",
            "occurred_at": (start + dt.timedelta(milliseconds=index)).isoformat()})
        webhook_id = f"msg_{run_id}_{index}"
        requests.append((body, {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
                                "webhook-signature": sign(SECRET, webhook_id, timestamp, body.encode())}))
    return requests


@asynccontextmanager
async def _targets(names: list[str], loop: trio_asyncio.TrioEventLoop, pg_port: int,
                   bootstrap: str) -> AsyncIterator[dict[str, str]]:
    """Every target running; yields name → webhook URL."""
    urls = {}
    async with AsyncExitStack() as stack:
        for index, name in enumerate(names):
            port = free_port()
            common = {"INGEST_PORT": str(port), "WEBHOOK_SECRETS": WHSEC, "INTERNAL_TOKEN": TOKEN}
            if name == "bare-asgi":
                await stack.enter_async_context(service(["-m", "webhooks.bench.bare_asgi", str(port)], {}, port))
            elif name == "kafka":
                prefix = f"bench{uuid.uuid4().hex[:6]}."
                await trio.to_thread.run_sync(create_topics, admin_client(bootstrap),
                                              [prefix + t for t in ALL_TOPICS], 6)
                env = {**common, "WEBHOOK_MODE": "kafka", "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TOPIC_PREFIX": prefix}
                await stack.enter_async_context(service(["-m", "ingest"], env, port))
            else:
                mode, _, encoding = name.partition("-")
                api_port, grpc_port = free_port(), free_port()
                shards = await seeded_shards(loop, pg_port, f"ingest{index}")
                await stack.enter_async_context(service(["-m", "api"], {
                    "API_PORT": str(api_port), "API_GRPC_PORT": str(grpc_port), "WEBHOOK_MODE": mode,
                    "DATABASE_URLS": ",".join(shards), "INTERNAL_TOKEN": TOKEN,
                    "API_TOKENS": "bench-public-token"}, api_port))
                env = {**common, "WEBHOOK_MODE": mode, "API_ENCODING": encoding or "json",
                       "API_BASE_URL": f"http://127.0.0.1:{api_port}", "API_GRPC_TARGET": f"127.0.0.1:{grpc_port}"}
                await stack.enter_async_context(service(["-m", "ingest"], env, port))
            urls[name] = f"http://127.0.0.1:{port}/webhooks/payments/orders"
        yield urls


async def _load(url: str, requests_file: Path, vus: int, duration: str, rate: int = 0) -> LoadResult:
    return await run_k6("post_bodies.js", {
        "URL": url, "BODIES_FILE": str(requests_file), "HEADERS": json.dumps({"content-type": "application/json"}),
        "VUS": str(vus), "DURATION": duration, "RATE": str(rate), "OK_STATUS": "202"})


async def run(targets: list[str], vus: int, duration: str, workdir: Path,
              progress: Callable[[str], None]) -> list[Row]:
    peaks: dict[str, list[LoadResult]] = {name: [] for name in targets}
    at_80: dict[str, LoadResult] = {}
    async with open_embedded_postgres() as pg_port, open_embedded_broker() as bootstrap, \
            trio_asyncio.open_loop() as loop, _targets(targets, loop, pg_port, bootstrap) as urls:
        for round_ in range(ROUNDS):
            for name in targets:
                progress(f"ingest: round {round_ + 1}/{ROUNDS}: {name}, {vus} VUs")
                requests_file = workdir / f"{name}-{round_}.json"
                requests_file.write_text(json.dumps(signed_requests(vus * 1_500, f"{name}-{round_}")))
                peaks[name].append(await _load(urls[name], requests_file, vus, duration))
        for name in targets:
            rate = max(1, int(statistics.median(r.ok_per_second for r in peaks[name]) * 0.8))
            progress(f"ingest: {name} at {rate}/s (80 % of its peak)")
            requests_file = workdir / f"{name}-80.json"
            requests_file.write_text(json.dumps(signed_requests(vus * 1_500, f"{name}-80")))
            at_80[name] = await _load(urls[name], requests_file, vus, duration, rate)
    return [Row(name, peaks[name], at_80[name]) for name in targets]


def table(rows: list[Row], vus: int, duration: str) -> str:
    ceiling = next((row.peak.ok_per_second for row in rows if row.target == "bare-asgi"), None)
    lines = [f"Signed order webhooks into one ingest process (http modes: plus one api process and PostgreSQL). "
             f"Peak: median of {ROUNDS} alternating rounds of {duration} with {vus} k6 VUs; then {duration} at a "
             "constant 80 % of that peak.", "",
             "| target | webhooks/s (peak) | % of bare ASGI | p50 ms | p95 ms | p99 ms | p99 ms at 80 % | errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        share = f"{row.peak.ok_per_second / ceiling:.0%}" if ceiling else "–"
        errors = sum(r.failed for r in row.peaks) + row.at_80.failed
        lines.append(f"| {row.target} | {row.peak.ok_per_second:,.0f} | {share} | {row.peak.p50_ms:.1f} | "
                     f"{row.peak.p95_ms:.1f} | {row.peak.p99_ms:.1f} | {row.at_80.p99_ms:.1f} | {errors} |")
    return "\n".join(lines)
