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
        f"the embedded PostgreSQL and broker, under an open-loop signed load of per-order chains, with the faults "
        f"below: a new chain starts every 1/{rate:g} × 3.5 s (3.5 events a chain on average), whatever became "
        f"of the ones before, so a healthy system gets about {rate:g} first attempts a second (provider retries "
        "come on top); a chain's next event goes out right after its previous one's 2xx, so during a fault the "
        "started chains wait on their retries while new ones keep starting; a retry waits out the answer's "
        "`Retry-After` (× 1–1.5) or, without one, a jittered backoff of up to 2 s. Configured beside the "
        f"defaults: {report.settings_line()}.",
        report.table(results),
        report.BREAKER_FIGURES,
        "## Offered load\n\nPer second within the load window, inside the fault windows and outside them "
        "(a chain start is the first attempt of its first event). Chain starts hold through the faults; first "
        "attempts inside a fault are mostly those chains' first events, as the later ones wait on a 2xx; outside "
        "they include the burst of held events once it is over. The provider sends through 96 one-connection "
        "clients: while ingest holds its answers (broker outage: ~5 s each) they bound the chain starts too.\n\n"
        + report.load_table(results),
        "![2xx/s, backlog, lag, breaker state; fault windows shaded](results.png)",
        "## Details\n\n" + (report.details(results) or "nothing to follow up"),
        f"(`webhooks chaos` took {took:.0f} s; process logs in `chaos/logs/`.)",
    ]) + "\n"
    (RESULTS / "results.md").write_text(text)
    print(text)
    return 0 if all(not r.findings for r in results) else 1
