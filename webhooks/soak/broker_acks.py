"""How long the broker took to acknowledge ingest's records, per soak interval, from ingest's own histogram.

A 202 in kafka mode waits for the broker's acknowledgement, so a request p99 that climbs over a
soak is either ingest (or the machine) slowing down, or the broker. Ingest already times every
delivery (``kafka_delivery_seconds``); the difference of two scrapes is the interval's
distribution, and its 99th percentile says which of the two it is. Pure: text in, numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

METRIC = "kafka_delivery_seconds"
Buckets = Mapping[float, float]  # upper bound ("le", +inf last) -> cumulative count


def delivery_buckets(metrics_text: str) -> dict[float, float]:
    """Cumulative counts per bucket bound, summed over every topic."""
    totals: dict[float, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != METRIC:
            continue
        for sample in family.samples:
            if sample.name == METRIC + "_bucket":
                bound = float(sample.labels["le"])
                totals[bound] = totals.get(bound, 0.0) + sample.value
    return totals


def interval(before: Buckets, after: Buckets) -> dict[float, float]:
    """The interval's cumulative counts: the later scrape less the earlier (a bound new since then counts whole).
    A count that went down means ingest restarted in between: then everything the later scrape holds is the
    interval's, as Prometheus' ``rate()`` treats a counter reset."""
    if any(count < before.get(bound, 0.0) for bound, count in after.items()):
        return dict(after)
    return {bound: count - before.get(bound, 0.0) for bound, count in after.items()}


def merge(intervals: list[Buckets]) -> dict[float, float]:
    merged: dict[float, float] = {}
    for counts in intervals:
        for bound, count in counts.items():
            merged[bound] = merged.get(bound, 0.0) + count
    return merged


def quantile_ms(counts: Buckets, q: float = 0.99) -> float | None:
    """The q-quantile in ms, interpolated linearly inside its bucket as Prometheus'
    ``histogram_quantile`` does; the top finite bound when it falls in +Inf; None without observations."""
    bounds = sorted(counts)
    total = counts[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = counts[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound * 1000
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return (lower_bound + (bound - lower_bound) * share) * 1000
        lower_bound, lower_count = bound, count
    return lower_bound * 1000
