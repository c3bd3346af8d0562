"""The soak's arrival rate: half of the system's peak (in the soak's mode), measured on the soak's own stack.

A soak asks "does it stay flat under a busy but sustainable load", so it runs at 50 % of the
peak. Bench's kafka row is not that peak: it measures ingest alone, with no workers consuming
and writing beside it (2,274/s in one run, while the whole system on the same 2 cores accepted
~700/s). So the soak first drives its own stack flat out for a few seconds (``PROBE_SECONDS``
of k6 at an arrival rate no stack here reaches) and takes 50 % of the webhooks/s accepted;
``--rate`` overrides it. http mode is probed the same way, on its own stack (ingest, api, PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass

SHARE_OF_PEAK = 0.5
PROBE_SECONDS = 20
PROBE_RATE = 5000  # webhooks/s offered while probing: above any peak measured here


@dataclass(frozen=True)
class LoadRate:
    per_second: int
    source: str  # said in the report: where the rate came from


def choose_rate(override: int | None, probed_accepted: int | None, probe_seconds: float = PROBE_SECONDS,
                mode: str = "kafka") -> LoadRate:
    """``--rate`` if given, else half the webhooks/s the probe of the ``mode`` system got accepted."""
    if override is not None:
        return LoadRate(override, "--rate")
    assert probed_accepted is not None, "without --rate the peak is probed first"
    peak = probed_accepted / probe_seconds
    return LoadRate(max(1, round(peak * SHARE_OF_PEAK)),
                    f"{SHARE_OF_PEAK:.0%} of the {mode}-mode system's peak of {peak:,.0f}/s, measured by a "
                    f"{probe_seconds:g} s flat-out probe of the same stack")
