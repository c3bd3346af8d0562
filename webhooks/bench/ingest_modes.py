"""Benchmark: signed webhooks/s through ingest, per mode, next to the server's own ceiling.

Targets — a bare ASGI app on the same hypercorn-trio setup (the ceiling of one
process), ingest in kafka mode (202 after the broker's ack), ingest in http mode
(JSON or Protobuf to a real api, which writes to PostgreSQL) — all run at once and
are measured in alternating rounds, so machine noise hits them alike; the peak of
each is the median of its rounds. Then each is offered 80 % of its peak at a
constant arrival rate, again in alternating rounds: the p99 there is what a provider
sees on a busy day. Each of those rounds starts with a warm-up in which k6 opens its
VUs' connections (up to 256 at once, at full rate: a burst of TCP accepts no
keep-alive client causes in steady state); the steady p99 leaves it out, and the
table shows the whole-run p99 beside it.

Each peak round also measures the CPU time (user + system) of every process of the target over
the round — ingest, and the api and PostgreSQL (sync modes) or the broker (kafka) — divided by
the webhooks answered: milliseconds of CPU per webhook, which stays comparable when the VM's
speed drifts between rounds. (Kafka mode's workers do not run here: its figure leaves out the
writing that the sync modes' figures include.)

The scenario is realistic: many users; per order authorized → paid in order, every 10th
paid sent twice (a provider retry: 200 duplicate in the sync modes); every 5th user also a
chargeback opened → won. The webhooks are signed in Python beforehand, so k6 (on the same
2 cores) only posts.
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

import psutil
import trio
import trio_asyncio

from ingest.signatures import sign
from shared.asyncio_loop import open_asyncio_loop
from shared.topics import ALL_TOPICS, admin_client, create_topics
from webhooks.bench.k6 import LoadResult, run_k6
from webhooks.bench.stack import cpu_seconds, postgres_processes, processes_with_argument, seeded_shards, service
from webhooks.embedded import free_port, open_embedded_broker, open_embedded_postgres

SECRET = b"bench-secret-0123456789abcdef"
WHSEC = "whsec_" + base64.b64encode(SECRET).decode()
TOKEN = "bench-internal-token"
TARGETS = ("bare-asgi", "kafka", "http-json", "http-protobuf", "grpc")
ROUNDS = 5  # at the peak; the VM's speed drifts by ±10 % within a minute
RATE_ROUNDS = 3  # at 80 % of the peak
WARMUP_SECONDS = 2
VUS = 64
USERS_PER_VU = 60  # ≈ 150 requests a VU: more than a 5 s round at the peak needs
SEEDED_ORDERS = (ROUNDS + RATE_ROUNDS) * VUS * USERS_PER_VU  # fresh orders for every round


@dataclass(frozen=True)
class Row:
    target: str
    peaks: list[LoadResult]
    at_80: list[LoadResult]
    cpu_ms: list[float]  # CPU ms per webhook answered, every process of the target, per peak round

    @property
    def peak(self) -> LoadResult:
        return sorted(self.peaks, key=lambda r: r.ok_per_second)[len(self.peaks) // 2]

    @property
    def cpu_ms_per_webhook(self) -> float:
        return statistics.median(self.cpu_ms)

    @property
    def steady_p99_at_80(self) -> float:
        return statistics.median(r.steady_p99_ms for r in self.at_80)

    @property
    def whole_p99_at_80(self) -> float:
        return statistics.median(r.p99_ms for r in self.at_80)


def _signed(path: str, payload: dict[str, object], webhook_id: str, timestamp: int) -> list[object]:
    body = json.dumps(payload)
    return [body, {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
                   "webhook-signature": sign(SECRET, webhook_id, timestamp, body.encode())}, path]


def user_stream(run_id: str, user: int, timestamp: int) -> list[list[object]]:
    """One user's webhooks, in order: authorized → paid (every 10th paid is sent twice: a provider
    retry); every 5th user also gets a chargeback opened → won."""
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    common = {"order_id": f"order-{user}", "user_id": f"user-{user}", "amount": 1000, "currency": "EUR"}
    stream = []
    for step, status in enumerate(("authorized", "paid")):
        payload = {**common, "provider_event_id": f"{run_id}-{user}-{status}", "status": status,
                   "occurred_at": (start + dt.timedelta(seconds=step)).isoformat()}
        stream.append(_signed("orders", payload, f"msg_{run_id}_{user}_{status}", timestamp))
    if user % 10 == 0:
        stream.append(stream[-1])  # the same event again, same id
    if user % 5 == 0:
        for step, status in enumerate(("opened", "won"), start=2):
            payload = {**common, "dispute_id": f"dispute-{user}", "reason": "fraudulent", "status": status,
                       "provider_event_id": f"{run_id}-{user}-d-{status}",
                       "occurred_at": (start + dt.timedelta(seconds=step)).isoformat()}
            stream.append(_signed("disputes", payload, f"msg_{run_id}_{user}_d_{status}", timestamp))
    return stream


def write_requests(directory: Path, name: str, first_user: int, slots: int, users_per_slot: int,
                   run_id: str) -> dict[str, str]:
    """The realistic scenario, signed now (valid for 5 minutes), as k6's BODIES_FILE and SLICES_FILE:
    each VU gets whole users, so every order's sequence is sent in order by one VU."""
    timestamp, requests, slices = int(time.time()), [], []
    for slot in range(slots):
        start = len(requests)
        for user in range(first_user + slot * users_per_slot, first_user + (slot + 1) * users_per_slot):
            requests += user_stream(run_id, user, timestamp)
        slices.append([start, len(requests) - start])
    (directory / f"{name}.json").write_text(json.dumps(requests))
    (directory / f"{name}.slices.json").write_text(json.dumps(slices))
    return {"BODIES_FILE": str(directory / f"{name}.json"), "SLICES_FILE": str(directory / f"{name}.slices.json")}


Processes = Callable[[], list[psutil.Process]]


def _fixed(processes: list[psutil.Process]) -> Processes:
    return lambda: processes


def _with_postgres(processes: list[psutil.Process], pg_port: int) -> Processes:
    return lambda: [*processes, *postgres_processes(pg_port)]


@asynccontextmanager
async def _targets(names: list[str], loop: trio_asyncio.TrioEventLoop, pg_port: int,
                   bootstrap: str) -> AsyncIterator[dict[str, tuple[str, Processes]]]:
    """Every target running; yields name → (webhook URL, every process of the target)."""
    urls = {}
    async with AsyncExitStack() as stack:
        for index, name in enumerate(names):
            port = free_port()
            common = {"INGEST_PORT": str(port), "WEBHOOK_SECRETS": WHSEC, "INTERNAL_TOKEN": TOKEN}
            if name == "bare-asgi":
                bare = await stack.enter_async_context(service(["-m", "webhooks.bench.bare_asgi", str(port)], {}, port))
                processes = _fixed([psutil.Process(bare.pid)])
            elif name == "kafka":
                prefix = f"bench{uuid.uuid4().hex[:6]}."
                await trio.to_thread.run_sync(create_topics, admin_client(bootstrap),
                                              [prefix + t for t in ALL_TOPICS], 6)
                env = {**common, "WEBHOOK_MODE": "kafka", "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TOPIC_PREFIX": prefix}
                ingest = await stack.enter_async_context(service(["-m", "ingest"], env, port))
                processes = _fixed([psutil.Process(ingest.pid), *processes_with_argument(f"tcp://{bootstrap}")])
            else:
                mode, _, encoding = name.partition("-")
                api_port, grpc_port = free_port(), free_port()
                shards = await seeded_shards(loop, pg_port, f"ingest{index}", orders=SEEDED_ORDERS)
                api = await stack.enter_async_context(service(["-m", "api"], {
                    "API_PORT": str(api_port), "API_GRPC_PORT": str(grpc_port), "WEBHOOK_MODE": mode,
                    "DATABASE_URLS": ",".join(shards), "INTERNAL_TOKEN": TOKEN,
                    "API_TOKENS": "bench-public-token"}, api_port))
                env = {**common, "WEBHOOK_MODE": mode, "API_ENCODING": encoding or "json",
                       "API_BASE_URL": f"http://127.0.0.1:{api_port}", "API_GRPC_TARGET": f"127.0.0.1:{grpc_port}"}
                ingest = await stack.enter_async_context(service(["-m", "ingest"], env, port))
                processes = _with_postgres([psutil.Process(ingest.pid), psutil.Process(api.pid)], pg_port)
            urls[name] = (f"http://127.0.0.1:{port}/webhooks/payments", processes)
        yield urls


async def _load(url: str, files: dict[str, str], vus: int, seconds: int, rate: int = 0, warmup: int = 0) -> LoadResult:
    return await run_k6("post_bodies.js", {
        "URL": url, **files, "HEADERS": json.dumps({"content-type": "application/json"}),
        "VUS": str(vus), "DURATION": f"{seconds}s", "RATE": str(rate), "WARMUP": str(warmup),
        "OK_STATUS": "200,202"})  # 200: a provider retry answered as duplicate (sync modes)


async def run(targets: list[str], vus: int, seconds: int, workdir: Path,
              progress: Callable[[str], None]) -> list[Row]:
    peaks: dict[str, list[LoadResult]] = {name: [] for name in targets}
    at_80: dict[str, list[LoadResult]] = {name: [] for name in targets}
    cpu_ms: dict[str, list[float]] = {name: [] for name in targets}
    async with open_embedded_postgres() as pg_port, open_embedded_broker() as bootstrap, \
            open_asyncio_loop() as loop, _targets(targets, loop, pg_port, bootstrap) as urls:
        for round_ in range(ROUNDS):
            for name in targets:
                progress(f"ingest: round {round_ + 1}/{ROUNDS}: {name}, {vus} VUs")
                files = write_requests(workdir, f"{name}-{round_}", round_ * vus * USERS_PER_VU, vus, USERS_PER_VU,
                                       f"{name}-{round_}")
                url, listed = urls[name]
                processes = listed()  # PostgreSQL's backends as they are now (the api's pool opens them on demand)
                before = cpu_seconds(processes)
                peaks[name].append(await _load(url, files, vus, seconds))
                cpu_ms[name].append((cpu_seconds(processes) - before) * 1000 / max(1, peaks[name][-1].ok))
        rates = {name: max(1, int(statistics.median(r.ok_per_second for r in peaks[name]) * 0.8)) for name in targets}
        for round_ in range(RATE_ROUNDS):
            for name in targets:
                progress(f"ingest: round {round_ + 1}/{RATE_ROUNDS}: {name} at {rates[name]}/s (80 % of its peak)")
                # an arrival-rate run may use up to 4 × vus VUs: as many slices, each a quarter as long
                files = write_requests(workdir, f"{name}-80-{round_}", (ROUNDS + round_) * vus * USERS_PER_VU,
                                       vus * 4, USERS_PER_VU // 4, f"{name}-80-{round_}")
                at_80[name].append(await _load(urls[name][0], files, vus, WARMUP_SECONDS + seconds, rates[name],
                                               WARMUP_SECONDS))
    return [Row(name, peaks[name], at_80[name], cpu_ms[name]) for name in targets]


def table(rows: list[Row], vus: int, seconds: int) -> str:
    ceiling = next((row.peak.ok_per_second for row in rows if row.target == "bare-asgi"), None)
    lines = [f"Signed webhooks (orders and disputes, in-order sequences, retries) into one ingest process "
             f"(http modes: plus one api process and PostgreSQL). "
             f"Peak: median of {ROUNDS} alternating rounds of {seconds} s with {vus} k6 VUs (latencies of that round). "
             f"At 80 %: a constant arrival rate of 80 % of that peak, median of {RATE_ROUNDS} alternating rounds of "
             f"{WARMUP_SECONDS} s warm-up + {seconds} s; steady p99 leaves the warm-up out (k6 opening up to "
             f"{4 * vus} connections at once), whole-run p99 keeps it. CPU ms per webhook: user + system time of "
             "every process of the target over a peak round (ingest; api and PostgreSQL in the sync modes; the "
             "broker in kafka mode, whose workers do not run here) / webhooks answered, median of the rounds.", "",
             "| target | webhooks/s (peak) | % of bare ASGI | p50 ms | p95 ms | p99 ms | p99 ms at 80 %, steady | "
             "p99 ms at 80 %, whole run | CPU ms / webhook | errors |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        share = f"{row.peak.ok_per_second / ceiling:.0%}" if ceiling else "–"
        errors = sum(r.failed for r in row.peaks) + sum(r.failed for r in row.at_80)
        lines.append(f"| {row.target} | {row.peak.ok_per_second:,.0f} | {share} | {row.peak.p50_ms:.1f} | "
                     f"{row.peak.p95_ms:.1f} | {row.peak.p99_ms:.1f} | {row.steady_p99_at_80:.1f} | "
                     f"{row.whole_p99_at_80:.1f} | {row.cpu_ms_per_webhook:.2f} | {errors} |")
    return "\n".join(lines)
