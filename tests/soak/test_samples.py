"""Judging a soak from its samples: levels, whole minutes, and every target of issue #15."""

from __future__ import annotations

import pytest

from webhooks.soak.samples import Delivery, Sample, Targets, delivery_checks, growth, judge, minutes, p99


def _run(rss: dict[str, list[float]], durations: list[tuple[float, ...]] | None = None) -> list[Sample]:
    """Samples every 10 s; ``rss`` per process per sample, ``durations`` per sample (10 ms each by default)."""
    count = len(next(iter(rss.values())))
    durations = durations or [(10.0,) * 100] * count
    return [Sample(10.0 * (i + 1), {name: values[i] for name, values in rss.items()}, durations[i], 100, 0)
            for i in range(count)]


def _checks(samples: list[Sample]) -> dict[str, bool]:
    return {check.what: check.passed for check in judge(samples)}


def test_p99_interpolates_between_closest_ranks() -> None:
    assert p99([]) is None
    assert p99([7.0]) == 7.0
    assert p99([float(v) for v in range(1, 101)]) == pytest.approx(99.01)


def test_flat_memory_and_latency_meet_every_target() -> None:
    samples = _run({"ingest": [80.0] * 60, "api": [70.0] * 60, "worker-1": [90.0] * 60, "broker": [40.0 + i for i in
                                                                                                   range(60)]})
    checks = _checks(samples)
    assert all(checks.values()) and len(checks) == 7  # peak and growth of 3 judged processes, the p99 spread


def test_the_broker_and_postgres_are_reported_not_judged() -> None:
    checks = _checks(_run({"worker-1": [90.0] * 12, "broker": [900.0] * 12, "postgres": [900.0] * 12}))
    assert not any("broker" in what or "postgres" in what for what in checks)


def test_a_worker_over_its_limit_fails_on_its_peak_alone() -> None:
    checks = _checks(_run({"worker-2": [200.0] * 30 + [251.0] + [200.0] * 29}))
    assert checks["worker-2 RSS, peak"] is False
    assert checks["worker-2 RSS growth over the last 5.0 min"] is True


def test_growth_is_measured_over_the_last_five_minutes_only() -> None:
    early_climb = [60.0 + i for i in range(29)] + [90.0] * 31  # 10 min: grew, then flat for 5
    assert growth(_run({"worker-1": early_climb}), "worker-1", 300) == (0.0, 300.0)
    still_climbing = [80.0 + 0.2 * i for i in range(60)]  # +12 MB over the last 5 min
    checks = _checks(_run({"worker-1": still_climbing}))
    assert checks["worker-1 RSS growth over the last 5.0 min"] is False


def test_one_noisy_reading_does_not_decide_growth() -> None:
    spike_at_the_end = [100.0] * 59 + [110.0]  # +10 % in one sample: +3.3 % as a level
    change, _ = growth(_run({"api": spike_at_the_end}), "api", 300) or (None, None)
    assert change == pytest.approx(0.1 / 3)


def test_a_short_run_judges_growth_over_what_it_has() -> None:
    change, covered = growth(_run({"ingest": [100.0, 100.0, 100.0, 104.0, 104.0, 104.0]}), "ingest", 300) or (0, 0)
    assert change == pytest.approx(0.04) and covered == 50.0
    assert growth(_run({"ingest": [100.0] * 5}), "ingest", 300) is None


def test_minutes_are_whole_and_their_p99_pools_their_requests() -> None:
    fast, slow = (5.0,) * 99 + (6.0,), (5.0,) * 99 + (500.0,)
    samples = _run({"api": [70.0] * 13}, [fast] * 5 + [slow] + [fast] * 7)
    whole = minutes(samples)
    assert [m.number for m in whole] == [1, 2]  # the 13th sample starts a minute that never ended
    assert whole[0].p99_ms == pytest.approx(p99(fast * 5 + slow))
    assert whole[0].accepted == 600 and whole[1].rss_mb == {"api": 70.0}


def test_p99_per_minute_must_stay_within_twice_its_lowest() -> None:
    steady, doubled = (10.0,) * 100, (25.0,) * 100
    checks = _checks(_run({"api": [70.0] * 18}, [steady] * 12 + [doubled] * 6))
    assert checks["p99 per minute, highest / lowest"] is False
    assert _checks(_run({"api": [70.0] * 18}, [steady] * 12 + [(19.0,) * 100] * 6))[
        "p99 per minute, highest / lowest"] is True


def test_under_two_whole_minutes_the_p99_spread_is_not_met() -> None:
    assert _checks(_run({"api": [70.0] * 11}))["p99 per minute, highest / lowest"] is False


def test_limits_go_by_the_kind_of_process() -> None:
    targets = Targets()
    assert (targets.rss_limit("worker-7"), targets.rss_limit("ingest"), targets.rss_limit("broker")) == (250, 150, None)


def test_a_worker_that_died_fails_the_soak() -> None:
    """A vanished process reads 0 MB: without this check its "growth" (−100 %) would pass."""
    samples = _run({"worker-1": [80.0] * 30 + [0.0] * 30})
    assert _checks(samples)["worker-1 alive throughout"] is False


def test_a_load_not_carried_or_events_lost_fail_the_soak() -> None:
    carried = Delivery(offered=1000, dropped=10, accepted=990, failed=0, stored=990)
    assert all(check.passed for check in delivery_checks(carried))
    for broken in (Delivery(1000, 300, 700, 0, 700), Delivery(1000, 0, 990, 10, 990), Delivery(1000, 0, 1000, 0, 999)):
        assert not all(check.passed for check in delivery_checks(broken)), broken
