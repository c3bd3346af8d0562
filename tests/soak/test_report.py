"""soak/results.md and results.png from samples: the verdict, the tables, the chart."""

from __future__ import annotations

from pathlib import Path

from webhooks.soak.load_rate import LoadRate
from webhooks.soak.report import markdown, publish
from webhooks.soak.samples import Sample, judge

SUMMARY = {"metrics": {"http_req_duration": {"values": {"p(99)": 41.5}},
                       "dropped_iterations": {"values": {"count": 7}}}}


def _samples(worker_mb: float) -> list[Sample]:
    return [Sample(10.0 * (i + 1), {"ingest": 80.0, "worker-1": worker_mb, "broker": 50.0 + i}, (20.0,) * 50, 50, 0)
            for i in range(12)]


def test_the_report_states_the_verdict_and_every_minute() -> None:
    samples = _samples(90.0)
    text = markdown(samples, judge(samples), LoadRate(5, "--rate"), 2, SUMMARY, 600, "a test machine")
    assert "Result: every target met" in text
    assert "| 2 | 80.0 | 90.0 | 61.0 | 20 | – | 5 | 0 |" in text  # the second minute: RSS at its end, p99, rate
    assert "Accepted (202): 600; failed: 0; events stored by the workers: 600" in text
    assert "(k6 `dropped_iterations`): 7" in text and "Whole run p99 (k6): 42 ms" in text


def test_a_missed_target_is_said_so() -> None:
    samples = _samples(300.0)
    text = markdown(samples, judge(samples), LoadRate(5, "--rate"), 2, {}, 600, "a test machine")
    assert "**some targets missed**" in text and "| worker-1 RSS, peak | 300 MB | ≤ 250 MB | **no** |" in text


def test_publish_writes_the_table_and_the_chart(tmp_path: Path) -> None:
    samples = _samples(90.0)
    publish(tmp_path / "soak", "# Soak\n", samples, "a title")
    assert (tmp_path / "soak" / "results.md").read_text() == "# Soak\n"
    assert (tmp_path / "soak" / "results.png").read_bytes().startswith(b"\x89PNG")


def _acked(i: int) -> Sample:
    """An interval of 100 acks, all within the 5–10 ms bucket early on and within 100–250 ms later."""
    slow = i >= 6
    buckets = {0.005: 0.0, 0.01: 0.0 if slow else 100.0, 0.1: 0.0, 0.25: 100.0, float("inf"): 100.0}
    return Sample(10.0 * (i + 1), {"ingest": 80.0, "broker": 50.0}, (20.0 + 100 * slow,) * 50, 50, 0,
                  {"ingest": 30.0, "broker": 20.0 + 40 * slow}, buckets)


def test_the_report_sets_the_requests_p99_beside_the_brokers_acks_and_cpu() -> None:
    samples = [_acked(i) for i in range(12)]
    text = markdown(samples, judge(samples), LoadRate(5, "--rate"), 2, SUMMARY, 600, "a test machine")
    assert "| 1 | 80.0 | 50.0 | 20 | 10 | 30 | 20 | 5 | 0 |" in text
    assert "| 2 | 80.0 | 50.0 | 120 | 248 | 30 | 60 | 5 | 0 |" in text
    assert "the requests' p99 went 20 → 120 ms and the broker's acknowledgements' p99 10 → 248 ms; " \
           "the broker's CPU 20 → 60 %" in text
