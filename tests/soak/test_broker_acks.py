"""The broker's acknowledgement p99 per interval, from two scrapes of ingest's histogram."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from webhooks.soak.broker_acks import delivery_buckets, interval, merge, quantile_ms

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


def _scrape(observations: dict[str, list[float]]) -> str:
    registry = CollectorRegistry()
    histogram = Histogram("kafka_delivery_seconds", "acks", ["topic"], buckets=BUCKETS, registry=registry)
    for topic, seconds in observations.items():
        for value in seconds:
            histogram.labels(topic).observe(value)
    return generate_latest(registry).decode()


def test_buckets_are_summed_over_topics_and_other_metrics_ignored() -> None:
    text = _scrape({"orders": [0.002, 0.02], "disputes": [0.02]}) + "other_seconds_bucket{le=\"0.1\"} 9.0\n"
    buckets = delivery_buckets(text)
    assert buckets[0.0025] == 1 and buckets[0.025] == 3 and buckets[math.inf] == 3


def test_the_interval_is_the_later_scrape_less_the_earlier() -> None:
    before = delivery_buckets(_scrape({"orders": [0.002] * 50}))
    after = delivery_buckets(_scrape({"orders": [0.002] * 50 + [0.2] * 100}))
    acks = interval(before, after)
    assert acks[0.0025] == 0 and acks[0.25] == 100
    assert 100 < (quantile_ms(acks) or 0) <= 250  # the 50 earlier fast acks no longer pull it down


def test_the_quantile_interpolates_inside_its_bucket_as_prometheus_does() -> None:
    counts = {0.01: 0.0, 0.025: 100.0, math.inf: 100.0}
    assert quantile_ms(counts, 0.5) == 17.5
    assert quantile_ms({0.1: 98.0, math.inf: 100.0}) == 100.0  # beyond the top bound: the top bound
    assert quantile_ms({0.1: 0.0, math.inf: 0.0}) is None and quantile_ms({}) is None


def test_minutes_merge_their_intervals() -> None:
    fast, slow = {0.01: 100.0, 0.25: 100.0, math.inf: 100.0}, {0.01: 0.0, 0.25: 100.0, math.inf: 100.0}
    merged = merge([fast, slow])
    assert merged == {0.01: 100.0, 0.25: 200.0, math.inf: 200.0}
    assert 10 < (quantile_ms(merged) or 0) <= 250


def test_a_restarted_ingest_counts_from_zero_not_negative() -> None:
    before = {0.005: 100.0, 0.01: 150.0, 0.1: 200.0, math.inf: 200.0}
    after = {0.005: 5.0, 0.01: 20.0, 0.1: 260.0, math.inf: 262.0}  # fewer fast acks than before: a reset
    assert interval(before, after) == after
    assert (quantile_ms(interval(before, after), 0.5) or 0) > 10
