"""The soak's arrival rate: half of the kafka-mode peak that ``webhooks bench`` measured.

A soak asks "does it stay flat under a busy but sustainable load", so it runs at 50 % of
the peak, taken from the kafka row of ``bench/results.md``. Without one (bench never ran
here) it falls back to 300 webhooks/s: the steady rate of bench's end-to-end scenario and
of the run in issue #15 that showed the workers' growth — well under the peak measured on
2 cores so far, so the soak measures memory, not saturation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SHARE_OF_PEAK = 0.5
FALLBACK_RATE = 300
_KAFKA_ROW = re.compile(r"^\|\s*kafka\s*\|\s*([\d,]+(?:\.\d+)?)\s*\|", re.MULTILINE)


@dataclass(frozen=True)
class LoadRate:
    per_second: int
    source: str  # said in the report: where the rate came from


def kafka_peak(results_markdown: str) -> float | None:
    """Webhooks/s of the ``kafka`` row of bench's ingest table, if there is one."""
    found = _KAFKA_ROW.search(results_markdown)
    return float(found.group(1).replace(",", "")) if found else None


def choose_rate(bench_results: Path, override: int | None) -> LoadRate:
    if override is not None:
        return LoadRate(override, "--rate")
    peak = kafka_peak(bench_results.read_text()) if bench_results.exists() else None
    if peak is None:
        return LoadRate(FALLBACK_RATE, f"no kafka peak in {bench_results.name}: the fallback of {FALLBACK_RATE}/s")
    rate = max(1, round(peak * SHARE_OF_PEAK))
    return LoadRate(rate, f"{SHARE_OF_PEAK:.0%} of the kafka-mode peak of {peak:,.0f}/s in bench/results.md")
