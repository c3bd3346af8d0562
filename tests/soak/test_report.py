"""soak/results.md and results.png from samples: the verdict, the tables, the chart."""

from __future__ import annotations

from pathlib import Path

from webhooks.soak.load_rate import LoadRate
from webhooks.soak.report import markdown, publish, results_name
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


def _http(i: int) -> Sample:
    """An http-mode sample: ingest and the api (no broker, no workers), no acknowledgements to time."""
    return Sample(10.0 * (i + 1), {"ingest": 80.0, "api": 70.0, "postgres": 300.0}, (30.0,) * 50, 50, 0,
                  {"ingest": 30.0, "api": 25.0, "postgres": 20.0})


def test_an_http_mode_report_says_so_and_has_no_broker_acks_column() -> None:
    samples = [_http(i) for i in range(12)]
    checks = judge(samples)
    text = markdown(samples, checks, LoadRate(5, "--rate"), 2, SUMMARY, 600, "a test machine", "http")
    assert text.startswith("# Soak: http mode\n")
    assert "`webhooks soak --mode http --minutes 2`: the http-mode system (ingest calling the api" in text
    assert "broker" not in text.replace("no broker", "")  # neither acks, nor its RSS, nor its CPU
    assert "| minute | ingest | api | postgres | p99 ms | ingest CPU % | api CPU % | postgres CPU % | webhooks/s | " \
           "failed |" in text
    assert "| 2 | 80.0 | 70.0 | 300.0 | 30 | 30 | 25 | 20 | 5 | 0 |" in text
    assert "| 60 | 80.0 | 70.0 | 300.0 | 30 | 30 | 25 | 20 | 5 |" in text  # the 10 s samples
    assert "events stored by the api (synchronously, before ingest answers): 600" in text
    assert "![RSS and p99 over the soak](results-http.png)" in text
    assert [c.what for c in checks if "RSS" in c.what] == [  # judged: the processes present, postgres shown only
        "ingest RSS, peak", "ingest RSS growth over the last 1.8 min", "api RSS, peak",
        "api RSS growth over the last 1.8 min"]
    assert "Result: every target met" in text


def test_a_kafka_mode_report_keeps_its_name_and_the_broker_acks() -> None:
    samples = [_acked(i) for i in range(12)]
    text = markdown(samples, judge(samples), LoadRate(5, "--rate"), 2, SUMMARY, 600, "a test machine")
    assert text.startswith("# Soak: kafka mode\n")
    assert "`webhooks soak --minutes 2`: the kafka-mode system" in text and "broker acks p99 ms" in text
    assert "events stored by the workers: 600" in text and "![RSS and p99 over the soak](results.png)" in text


def test_each_mode_has_its_own_results_files(tmp_path: Path) -> None:
    assert results_name("kafka") == "results" and results_name("http") == "results-http"
    samples = [_http(i) for i in range(12)]
    publish(tmp_path, "# Soak: http mode\n", samples, "a title", "http")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results-http.md", "results-http.png"]
    assert (tmp_path / "results-http.png").read_bytes().startswith(b"\x89PNG")
