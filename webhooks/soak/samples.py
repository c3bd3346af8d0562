"""The soak's numbers: a sample every 10 s, folded into minutes and judged against the targets.

Pure (no I/O, no clock): the runner measures, this decides, so the judging is tested with
made-up samples. The targets are issue #15's: RSS ingest ≤ 150 MB, api ≤ 150 MB, each
worker ≤ 250 MB; growth over the last 5 minutes ≤ 5 %; p99 per minute flat within 2×.

Growth compares levels, not single readings: the mean of the first three samples of the
window against the mean of its last three, so one noisy reading (a GC, a burst of
allocations in flight) neither passes nor fails the run on its own.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from webhooks.soak import broker_acks

SAMPLE_SECONDS = 10.0
LEVEL_SAMPLES = 3  # samples averaged into a level at each end of the growth window
RSS_LIMITS_MB = {"ingest": 150.0, "api": 150.0, "worker": 250.0}  # by kind: "worker-2" is a worker


@dataclass(frozen=True)
class Sample:
    seconds: float  # since the load started: the end of the interval this sample covers
    rss_mb: Mapping[str, float]  # process name -> resident set size
    durations_ms: tuple[float, ...] = field(repr=False)  # of the requests k6 reported in the interval
    accepted: int  # answered 202
    failed: int
    cpu_percent: Mapping[str, float] = field(default_factory=dict)  # process name -> % of one core, this interval
    ack_buckets: Mapping[float, float] = field(default_factory=dict, repr=False)  # broker acks this interval

    @property
    def p99_ms(self) -> float | None:
        return p99(self.durations_ms)

    @property
    def ack_p99_ms(self) -> float | None:
        return broker_acks.quantile_ms(self.ack_buckets)


@dataclass(frozen=True)
class Minute:
    number: int  # 1-based
    rss_mb: Mapping[str, float]  # at the minute's end
    p99_ms: float | None
    accepted: int
    failed: int
    ack_p99_ms: float | None = None  # the broker's acknowledgements to ingest, this minute
    cpu_percent: Mapping[str, float] = field(default_factory=dict)  # mean of the minute's samples


@dataclass(frozen=True)
class Check:
    what: str
    measured: str
    target: str
    passed: bool


@dataclass(frozen=True)
class Targets:
    rss_limits_mb: Mapping[str, float] = field(default_factory=lambda: dict(RSS_LIMITS_MB))
    growth_window_seconds: float = 300.0
    max_growth: float = 0.05
    max_p99_spread: float = 2.0

    def rss_limit(self, process: str) -> float | None:
        """The limit of ``process`` by its kind (``worker-2`` → ``worker``); None: reported, not judged."""
        return self.rss_limits_mb.get(process.split("-")[0])


def p99(values: Sequence[float]) -> float | None:
    """The 99th percentile, interpolated between closest ranks as k6 computes it."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def minutes(samples: Sequence[Sample]) -> list[Minute]:
    """Whole minutes only: a minute is complete once its last 10 s sample is in."""
    per_minute = round(60 / SAMPLE_SECONDS)
    result = []
    for start in range(0, len(samples) - per_minute + 1, per_minute):
        chunk = samples[start:start + per_minute]
        durations = [d for sample in chunk for d in sample.durations_ms]
        cpu = {name: statistics.fmean(s.cpu_percent.get(name, 0.0) for s in chunk) for name in chunk[-1].cpu_percent}
        result.append(Minute(start // per_minute + 1, chunk[-1].rss_mb, p99(durations),
                             sum(s.accepted for s in chunk), sum(s.failed for s in chunk),
                             broker_acks.quantile_ms(broker_acks.merge([s.ack_buckets for s in chunk])), cpu))
    return result


def growth(samples: Sequence[Sample], process: str, window_seconds: float) -> tuple[float, float] | None:
    """(relative growth, seconds actually covered) of ``process``'s RSS over the run's last ``window_seconds``
    (all of a shorter run); None without enough samples for two levels."""
    end = samples[-1].seconds if samples else 0.0
    window = [s for s in samples if s.seconds >= end - window_seconds and process in s.rss_mb]
    if len(window) < 2 * LEVEL_SAMPLES:
        return None
    first = statistics.fmean(s.rss_mb[process] for s in window[:LEVEL_SAMPLES])
    last = statistics.fmean(s.rss_mb[process] for s in window[-LEVEL_SAMPLES:])
    return last / first - 1, window[-1].seconds - window[0].seconds


def judge(samples: Sequence[Sample], targets: Targets = Targets()) -> list[Check]:
    """Every target, measured: peak RSS and growth per judged process, then the p99 spread."""
    if not samples:
        return []
    checks: list[Check] = []
    for process in samples[-1].rss_mb:
        limit = targets.rss_limit(process)
        if limit is None:
            continue
        gone = [s.seconds for s in samples if s.rss_mb.get(process, 0.0) <= 0.0]
        if gone:  # a crashed or killed process reads 0 MB: "no growth" would pass it
            checks.append(Check(f"{process} alive throughout", f"gone at {gone[0]:.0f} s", "alive", False))
        peak = max(s.rss_mb[process] for s in samples if process in s.rss_mb)
        checks.append(Check(f"{process} RSS, peak", f"{peak:.0f} MB", f"≤ {limit:.0f} MB", peak <= limit))
        measured = growth(samples, process, targets.growth_window_seconds)
        if measured is not None:
            change, covered = measured
            checks.append(Check(f"{process} RSS growth over the last {covered / 60:.1f} min", f"{change:+.1%}",
                                f"≤ {targets.max_growth:.0%}", change <= targets.max_growth))
    checks.append(_p99_spread(minutes(samples), targets.max_p99_spread))
    return checks


def _p99_spread(whole_minutes: Sequence[Minute], limit: float) -> Check:
    values = [m.p99_ms for m in whole_minutes if m.p99_ms is not None]
    what = "p99 per minute, highest / lowest"
    if len(values) < 2:
        return Check(what, "fewer than 2 whole minutes", f"≤ {limit:.0f}×", False)
    spread = max(values) / min(values) if min(values) > 0 else math.inf
    return Check(what, f"{spread:.2f}× ({min(values):.0f}–{max(values):.0f} ms)", f"≤ {limit:.0f}×",
                 spread <= limit)


@dataclass(frozen=True)
class Delivery:
    """What k6 and the databases say about the load itself (a soak that did not carry its load,
    or lost events, measured nothing worth trusting)."""

    offered: int  # iterations the arrival rate asked for
    dropped: int  # k6 ``dropped_iterations``: not sent, every VU waiting on an answer
    accepted: int  # answered 202
    failed: int
    stored: int  # event rows once the workers caught up


MAX_DROPPED_SHARE = 0.01


def delivery_checks(delivery: Delivery) -> list[Check]:
    dropped_share = delivery.dropped / delivery.offered if delivery.offered else 0.0
    return [
        Check("load sent (k6 dropped iterations)", f"{dropped_share:.1%} dropped", f"≤ {MAX_DROPPED_SHARE:.0%}",
              dropped_share <= MAX_DROPPED_SHARE),
        Check("requests failed", f"{delivery.failed:,}", "0", delivery.failed == 0),
        Check("events stored / accepted", f"{delivery.stored:,} / {delivery.accepted:,}", "equal",
              delivery.stored == delivery.accepted),
    ]
