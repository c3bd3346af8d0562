"""``webhooks soak`` refuses a length or rate that cannot run, before starting anything."""

from __future__ import annotations

import pytest

from webhooks.cli import main
from webhooks.soak.broker_control import measure_broker_only


@pytest.mark.parametrize("argv", [["soak", "--minutes", "0"], ["soak", "--rate", "-5"]])
def test_a_soak_that_cannot_run_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "must be positive" in capsys.readouterr().err


async def test_the_broker_only_control_acknowledges_everything_and_reports_each_window() -> None:
    windows = await measure_broker_only(minutes=0.2, rate=200, window_seconds=3.0)
    assert len(windows) >= 3  # 12 s of load in 3 s windows
    assert [w.records for w in windows] == sorted(w.records for w in windows)
    assert all(0 < w.p50_ms <= w.p99_ms for w in windows)
    assert all(w.broker_rss_mb > 0 for w in windows)
