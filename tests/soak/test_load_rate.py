"""The soak's rate: half the kafka peak in bench/results.md, an override, or the stated fallback."""

from __future__ import annotations

from pathlib import Path

from webhooks.soak.load_rate import FALLBACK_RATE, choose_rate, kafka_peak

TABLE = """| target | webhooks/s (peak) | % of bare ASGI | p50 ms |
|---|---:|---:|---:|
| bare-asgi | 1,326 | 100% | 40.4 |
| kafka | 1,062 | 80% | 60.1 |
| http-json | 197 | 15% | 264.7 |
"""


def test_the_kafka_row_gives_the_peak() -> None:
    assert kafka_peak(TABLE) == 1062.0
    assert kafka_peak(TABLE.replace("| kafka |", "| grpc |")) is None


def test_half_the_peak_unless_overridden(tmp_path: Path) -> None:
    results = tmp_path / "results.md"
    results.write_text(TABLE)
    assert choose_rate(results, None).per_second == 531
    assert choose_rate(results, 200).per_second == 200


def test_without_bench_results_the_fallback_says_so(tmp_path: Path) -> None:
    rate = choose_rate(tmp_path / "missing.md", None)
    assert rate.per_second == FALLBACK_RATE and "no kafka peak" in rate.source
