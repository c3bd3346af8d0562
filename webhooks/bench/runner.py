"""``webhooks bench``: run the chosen scenarios and write their tables to ``bench/``."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import tempfile
from pathlib import Path

import psutil

from webhooks.bench import api_writes, ingest_modes, workers_drain
from webhooks.procfile import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench"


def progress(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
            f"Python {platform.python_version()}")


async def run_bench(scenarios: list[str], vus: int, duration: str) -> int:
    RESULTS.mkdir(exist_ok=True)
    header = f"Measured {dt.date.today()} on {machine()}; k6 {duration} per variant.\n\n"
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        if "api-writes" in scenarios:
            rows = await api_writes.run(vus, duration, Path(tmp), progress)
            text = header + api_writes.table(rows, vus) + "\n"
            (RESULTS / "api-writes.md").write_text(text)
            print(text)
        if "ingest" in scenarios:
            rows = await ingest_modes.run(list(ingest_modes.TARGETS), 64, "5s", Path(tmp), progress)
            text = header + ingest_modes.table(rows, 64, "5s") + "\n"
            (RESULTS / "ingest.md").write_text(text)
            print(text)
        if "workers" in scenarios:
            drains, latency = await workers_drain.run(Path(tmp), progress)
            text = header + workers_drain.table(drains, latency) + "\n"
            (RESULTS / "workers.md").write_text(text)
            print(text)
    return 0
