"""``webhooks soak [--mode kafka|http] --minutes N``: one mode's system under a steady load, measured every 10 s.

k6 (``signed_stream.js``) sends signed webhooks at a constant arrival rate for N minutes
while this samples, every 10 s, the RSS of every process — ingest, api, both workers, and
for reference the embedded broker and PostgreSQL (which are not judged: tansu keeps every
record in memory by design, and PostgreSQL's RSS counts its shared buffers once per
backend) — their CPU, the p99 of the requests k6 reported in that interval (``k6_csv``), and
the p99 of the broker's acknowledgements as ingest timed them (``broker_acks``: a 202 waits for
one, so this says whether a climbing p99 is ours or the broker's). Then ``soak/results.md`` and
``soak/results.png``. Everything shares the machine with k6.

``--mode http`` runs ``Procfile.http`` instead: ingest and the api (which writes each batch before
ingest answers) on PostgreSQL, with no broker — so nothing of the broker is sampled — and writes
``soak/results-http.md`` and ``soak/results-http.png``, leaving kafka mode's results alone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import asyncpg
import httpx
import psutil
import trio
import trio_asyncio

from shared.asyncio_loop import open_asyncio_loop
from webhooks.bench.ingest_modes import SECRET
from webhooks.bench.k6 import k6_binary, run_k6_process
from webhooks.bench.runner import machine, progress
from webhooks.embedded import open_embedded_broker, open_embedded_postgres
from webhooks.procfile import PROJECT_ROOT
from webhooks.soak import SoakMode, report
from webhooks.soak.k6_csv import CsvTail
from webhooks.soak.load_rate import PROBE_RATE, PROBE_SECONDS, LoadRate, choose_rate
from webhooks.soak.meters import Meters, Reading, broker_process
from webhooks.soak.samples import SAMPLE_SECONDS, Delivery, Sample, delivery_checks, judge
from webhooks.soak.stack import USERS, SoakStack, open_soak_stack

RESULTS = PROJECT_ROOT / "soak"
SCRIPT = Path(__file__).parent / "signed_stream.js"
VUS = 32  # pre-allocated; k6 may use up to 4× as many if answers slow down


async def run_soak(minutes: float, rate_override: int | None, results: Path = RESULTS,
                   mode: SoakMode = "kafka") -> int:
    async with AsyncExitStack() as contexts:
        pg_port = await contexts.enter_async_context(open_embedded_postgres())
        bootstrap = await contexts.enter_async_context(open_embedded_broker()) if mode == "kafka" else None
        loop = await contexts.enter_async_context(open_asyncio_loop())
        stack = await contexts.enter_async_context(open_soak_stack(loop, pg_port, bootstrap))
        broker = broker_process(bootstrap) if bootstrap is not None else None
        with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
            probed = None
            if rate_override is None:
                progress(f"soak: probing the {mode}-mode system's peak for {PROBE_SECONDS} s")
                probed = await _probe(stack, Path(tmp))
                await _stored_events(loop, stack.database_urls)  # the workers catch up before the soak
            rate = choose_rate(rate_override, probed, mode=mode)
            progress(f"soak: {mode} mode, {minutes:g} min at {rate.per_second}/s ({rate.source})")
            samples, summary = await _load_and_sample(stack, rate, minutes, Path(tmp), pg_port, broker)
        stored = await _stored_events(loop, stack.database_urls) - (probed or 0)
    offered = round(rate.per_second * minutes * 60)
    checks = judge(samples) + delivery_checks(Delivery(
        offered, report.k6_count(summary, "dropped_iterations"), sum(s.accepted for s in samples),
        sum(s.failed for s in samples), stored))
    text = report.markdown(samples, checks, rate, minutes, summary, stored, machine(), mode)
    title = f"{mode} mode, {minutes:g} min at {rate.per_second}/s, {dt.date.today()}, {machine()}"
    await trio.to_thread.run_sync(report.publish, results, text, samples, title, mode)
    print(text)
    return 0 if all(check.passed for check in checks) else 1


async def _probe(stack: SoakStack, workdir: Path) -> int:
    """Webhooks accepted while k6 offers far more than the stack can take, for ``PROBE_SECONDS``."""
    summary_path = workdir / "probe.json"
    env = {"URL": stack.ingest_url, "SECRET": SECRET.decode(), "USERS": str(USERS), "RATE": str(PROBE_RATE),
           "DURATION": f"{PROBE_SECONDS}s", "VUS": str(VUS), "RUN": f"probe{uuid.uuid4().hex[:6]}",
           "SUMMARY_FILE": str(summary_path), "PATH": "/usr/bin:/bin"}
    await run_k6_process([k6_binary(), "run", "--quiet", "--no-usage-report", str(SCRIPT)], env,
                         stderr=subprocess.DEVNULL)
    return report.k6_count(json.loads(summary_path.read_text()), "ok")


async def _load_and_sample(stack: SoakStack, rate: LoadRate, minutes: float, workdir: Path, pg_port: int,
                           broker: psutil.Process | None) -> tuple[list[Sample], dict[str, object]]:
    csv_path, summary_path = workdir / "k6.csv", workdir / "summary.json"
    env = {"URL": stack.ingest_url, "SECRET": SECRET.decode(), "USERS": str(USERS), "RATE": str(rate.per_second),
           "DURATION": f"{round(minutes * 60)}s", "VUS": str(VUS), "RUN": f"soak{uuid.uuid4().hex[:6]}",
           "SUMMARY_FILE": str(summary_path), "PATH": "/usr/bin:/bin"}
    argv = [k6_binary(), "run", "--quiet", "--no-usage-report", "--system-tags", "status",
            "--out", f"csv={csv_path}", str(SCRIPT)]
    finished = trio.Event()
    samples: list[Sample] = []
    meters = Meters(stack.processes, pg_port, broker, stack.ingest_metrics_url)
    async with httpx.AsyncClient(timeout=5.0) as client, trio.open_nursery() as nursery:
        await meters.start(client)

        async def load() -> None:
            try:
                await run_k6_process(argv, env)
            finally:
                finished.set()

        nursery.start_soon(load)
        await _sample_until(finished, CsvTail(csv_path), lambda: meters.read(client), samples, minutes,
                            acks=stack.ingest_metrics_url is not None)
    return samples, json.loads(summary_path.read_text())


async def _sample_until(finished: trio.Event, k6: CsvTail, read: Callable[[], Awaitable[Reading]],
                        samples: list[Sample], minutes: float, acks: bool = True) -> None:
    """A sample every 10 s of the load; what k6 reports after the last tick (it finishes the requests
    in flight) is folded into the last sample."""
    started = trio.current_time()
    for tick in range(1, max(1, round(minutes * 60 / SAMPLE_SECONDS)) + 1):
        with trio.move_on_at(started + SAMPLE_SECONDS * tick):
            await finished.wait()
        if finished.is_set() and samples:
            break
        interval = await trio.to_thread.run_sync(k6.read)
        reading = await read()
        samples.append(Sample(SAMPLE_SECONDS * tick, reading.rss_mb, interval.durations_ms, interval.accepted,
                              interval.failed, reading.cpu_percent, reading.ack_buckets))
        progress(_progress_line(samples[-1], minutes, acks=acks))
    await finished.wait()
    tail = await trio.to_thread.run_sync(k6.read)
    samples[-1] = dataclasses.replace(samples[-1], durations_ms=samples[-1].durations_ms + tail.durations_ms,
                                      accepted=samples[-1].accepted + tail.accepted,
                                      failed=samples[-1].failed + tail.failed)


def _progress_line(sample: Sample, minutes: float, acks: bool = True) -> str:
    """One line per sample; ``acks``: kafka mode, where ingest times the broker's acknowledgements."""
    elapsed = f"{_clock(sample.seconds)}/{_clock(minutes * 60)}"
    memory = "  ".join(f"{name} {mb:.0f}" for name, mb in sample.rss_mb.items())
    p99 = f"{sample.p99_ms:.0f} ms" if sample.p99_ms is not None else "–"
    ack = f"{sample.ack_p99_ms:.0f} ms" if sample.ack_p99_ms is not None else "–"
    return (f"soak {elapsed}  RSS MB: {memory}  p99 {p99}" + (f" (broker acks {ack})" if acks else "")
            + f"  {sample.accepted / SAMPLE_SECONDS:.0f}/s" + (f"  failed {sample.failed}" if sample.failed else ""))


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


async def _stored_events(loop: trio_asyncio.TrioEventLoop, urls: list[str]) -> int:
    """Event rows on every shard once the workers have caught up (no new row for a second; in http mode the
    api wrote each before ingest answered): every accepted webhook is a new event, so this equals the 202s
    unless something was lost."""
    async def count(url: str) -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval("SELECT (SELECT count(*) FROM order_events)"
                                           " + (SELECT count(*) FROM dispute_events)"))
        finally:
            await conn.close()

    previous = -1
    with trio.move_on_after(60):
        while (stored := sum([await loop.run_aio_coroutine(count(url)) for url in urls])) != previous:
            previous = stored
            await trio.sleep(1.0)
    return stored

