"""``webhooks bench``: run the scenarios, write ``bench/results.md`` and ``bench/results.png``."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import psutil

from webhooks.bench import api_writes, ceilings, chart, ingest_modes, workers_drain
from webhooks.procfile import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench"
SCENARIOS = ("ceilings", "ingest", "workers", "api-writes")


def progress(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
            f"Python {platform.python_version()}")


async def run_bench(scenarios: list[str], vus: int, duration: str) -> int:
    RESULTS.mkdir(exist_ok=True)
    started = time.monotonic()
    sections = [f"# Benchmarks\n\nMeasured {dt.date.today()} on {machine()}; everything (k6, broker, PostgreSQL, "
                "the services) shares the machine. Figures from one run; machines are noisy (±20 %).\n"]
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        if "ceilings" in scenarios:
            progress("ceilings: raw produce, PostgreSQL executemany")
            sections.append("## Ceilings\n\n" + ceilings.table(await ceilings.run()))
        if "ingest" in scenarios:
            rows = await ingest_modes.run(list(ingest_modes.TARGETS), ingest_modes.VUS, 5, Path(tmp), progress)
            sections.append("## Ingest, every mode\n\n" + ingest_modes.table(rows, ingest_modes.VUS, 5)
                            + "\n\n![webhooks/s and latency per mode](results.png)")
            chart.draw(rows, RESULTS / "results.png", f"one ingest process per mode, {dt.date.today()}, {machine()}")
        if "workers" in scenarios:
            drains, latency = await workers_drain.run(Path(tmp), progress)
            sections.append("## Workers\n\n" + workers_drain.table(drains, latency))
        if "api-writes" in scenarios:
            rows = await api_writes.run(vus, duration, Path(tmp), progress)
            sections.append("## api writes\n\n" + api_writes.table(rows, vus))
    text = "\n\n".join(sections) + f"\n\n(`webhooks bench` took {time.monotonic() - started:.0f} s.)\n"
    (RESULTS / "results.md").write_text(text)
    print(text)
    return 0
