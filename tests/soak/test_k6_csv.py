"""Reading k6's CSV while it is written: new complete lines only, the durations and the counters."""

from __future__ import annotations

from pathlib import Path

from webhooks.soak.k6_csv import CsvTail, parse_rows

HEADER = "metric_name,timestamp,metric_value,check,error,error_code,group,status,extra_tags,metadata\n"


def _row(metric: str, value: float, error: str = "") -> str:
    return f'{metric},1796200000,{value:f},,"{error}",,,202,,\n'


def test_durations_and_counters_are_taken_and_other_metrics_ignored() -> None:
    lines = [_row("http_req_duration", 12.5), _row("http_req_waiting", 12.0), _row("ok", 1), _row("failed", 1),
             _row("http_req_duration", 30.0, error="dial tcp 127.0.0.1:1: connect: refused, again"), _row("ok", 1)]
    interval = parse_rows(lines, HEADER.strip().split(","))
    assert interval.durations_ms == (12.5, 30.0)
    assert (interval.accepted, interval.failed) == (2, 1)


def test_each_read_returns_what_was_appended_since_the_last(tmp_path: Path) -> None:
    path = tmp_path / "k6.csv"
    tail = CsvTail(path)
    assert tail.read().durations_ms == ()  # k6 has not created it yet
    path.write_text(HEADER + _row("http_req_duration", 1.0) + _row("ok", 1))
    first = tail.read()
    with path.open("a") as file:
        file.write(_row("http_req_duration", 2.0) + "http_req_dur")  # k6 is mid-line
    second = tail.read()
    with path.open("a") as file:
        file.write("ation,1796200001,3.000000,,,,,202,,\n")
    third = tail.read()
    assert (first.durations_ms, first.accepted) == ((1.0,), 1)
    assert (second.durations_ms, second.accepted) == ((2.0,), 0)
    assert third.durations_ms == (3.0,)
