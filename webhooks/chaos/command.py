"""``webhooks chaos [--scenario NAME ...] [--mode MODE ...]``: run, then write ``chaos/results.md`` and ``.png``."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence

from shared.settings import Mode
from webhooks.bench.runner import machine
from webhooks.chaos import report
from webhooks.chaos.load import LoadShape
from webhooks.chaos.runner import run_chaos, selected
from webhooks.procfile import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "chaos"


async def run_chaos_command(names: Sequence[str], modes: Sequence[Mode], rate: float) -> int:
    runs = selected(names, modes)
    RESULTS.mkdir(exist_ok=True)
    shape = LoadShape(rate_per_second=rate)
    begun = time.monotonic()
    results = await run_chaos(runs, shape, RESULTS / "logs")
    took = time.monotonic() - begun
    title = f"webhooks chaos, {dt.date.today()}, {machine()}"
    report.draw(results, RESULTS / "results.png", title)
    text = "\n\n".join([
        f"# Chaos\n\nMeasured {dt.date.today()} on {machine()}; the processes run as the Procfiles run them, on "
        f"the embedded PostgreSQL and broker, under a steady signed load of {rate:g} webhooks/s (first attempts; "
        "provider retries come on top) of per-order chains, with the faults below. Configured beside the "
        f"defaults: {report.settings_line()}.",
        report.table(results),
        "![2xx/s, backlog, lag, breaker state; fault windows shaded](results.png)",
        "## Details\n\n" + (report.details(results) or "nothing to follow up"),
        f"(`webhooks chaos` took {took:.0f} s; process logs in `chaos/logs/`.)",
    ]) + "\n"
    (RESULTS / "results.md").write_text(text)
    print(text)
    return 0 if all(not r.findings for r in results) else 1
