"""``webhooks soak --mode http`` end to end, briefly: the http-mode processes on a real PostgreSQL,
k6 signing each webhook, every accepted event found stored by the api."""

from __future__ import annotations

import re
from pathlib import Path

import psutil

from webhooks.soak import runner


async def test_a_short_http_soak_stores_every_accepted_event_and_samples_only_its_own_processes(
        tmp_path: Path) -> None:
    before = {p.pid for p in psutil.process_iter()}
    await runner.run_soak(0.25, 40, tmp_path, "http")  # too short for the per-minute p99 check: not judged here
    text = (tmp_path / "results-http.md").read_text()
    accepted, stored = (int(n.replace(",", "")) for n in re.search(
        r"Accepted \(202\): ([\d,]+); failed: 0; events stored by the api[^:]*: ([\d,]+)", text).groups())
    assert accepted >= 0.9 * 40 * 15 and stored == accepted
    minutes_header = next(line for line in text.splitlines() if line.startswith("| minute |"))
    assert minutes_header.startswith("| minute | ingest | api | postgres | p99 ms |")  # no worker, no broker
    assert "worker-1" not in text and "broker acks" not in text
    assert (tmp_path / "results-http.png").exists() and not (tmp_path / "results.md").exists()
    left = [p for p in psutil.process_iter(["cmdline"]) if p.pid not in before
            and any(word in " ".join(p.info["cmdline"] or []) for word in ("-m ingest", "-m api", "k6"))]
    assert left == []  # the soak stops every process it started
