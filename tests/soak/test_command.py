"""``webhooks soak`` refuses a length, rate or mode that cannot run, before starting anything."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import trio

from webhooks.cli import main
from webhooks.soak import runner
from webhooks.soak.broker_control import measure_broker_only


@pytest.mark.parametrize("argv", [["soak", "--minutes", "0"], ["soak", "--rate", "-5"]])
def test_a_soak_that_cannot_run_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "must be positive" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["soak", "--mode", "http", "--broker-only"],
                                  ["soak", "--broker-only", "--mode", "http"]])
def test_broker_only_in_http_mode_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: webhooks soak") and "--broker-only" in err and "--mode http has no broker" in err


def test_a_mode_the_soak_does_not_run_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["soak", "--mode", "grpc"])
    assert exited.value.code == 2
    assert "invalid choice: 'grpc'" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "mode"), [([], "kafka"), (["--mode", "http"], "http"),
                                            (["--mode", "kafka"], "kafka")])
def test_the_soak_runs_in_the_mode_asked_for_kafka_by_default(argv: list[str], mode: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    async def fake_run_soak(minutes: float, rate: int | None, results: Path, mode: str) -> int:
        calls.append((minutes, rate, results, mode))
        return 0

    monkeypatch.setattr(runner, "run_soak", fake_run_soak)
    with pytest.raises(SystemExit) as exited:
        main(["soak", *argv, "--minutes", "1", "--rate", "100"])
    assert exited.value.code == 0
    assert calls == [(1.0, 100, runner.RESULTS, mode)]


async def test_the_broker_only_control_acknowledges_everything_and_reports_each_window() -> None:
    windows = await measure_broker_only(minutes=0.2, rate=200, window_seconds=3.0)
    assert len(windows) >= 3  # 12 s of load in 3 s windows
    assert [w.records for w in windows] == sorted(w.records for w in windows)
    assert all(0 < w.p50_ms <= w.p99_ms for w in windows)
    assert all(w.broker_rss_mb > 0 for w in windows)


async def test_k6_stopped_by_a_signal_is_the_users_interrupt_and_other_failures_are_errors() -> None:
    from webhooks.bench.k6 import K6_INTERRUPTED, run_k6_process

    await run_k6_process(["sh", "-c", "exit 0"], {})
    with pytest.raises(KeyboardInterrupt):
        await run_k6_process(["sh", "-c", f"exit {K6_INTERRUPTED}"], {})
    with pytest.raises(subprocess.CalledProcessError):
        await run_k6_process(["sh", "-c", "exit 99"], {})


def test_ctrl_c_during_a_soak_ends_it_with_a_line_not_a_traceback(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    async def interrupted(minutes: float, rate: int | None, results: Path, mode: str) -> int:
        async with trio.open_nursery() as nursery:  # as trio reports it: inside nursery groups
            async def k6() -> None:
                raise KeyboardInterrupt
            nursery.start_soon(k6)
            await trio.sleep_forever()
        return 0

    monkeypatch.setattr(runner, "run_soak", interrupted)
    with pytest.raises(SystemExit) as exited:
        main(["soak", "--minutes", "1", "--rate", "100"])
    assert exited.value.code == 130
    assert capsys.readouterr().err == "webhooks soak: interrupted\n"


def test_a_failure_beside_an_interrupt_still_shows_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(minutes: float, rate: int | None, results: Path, mode: str) -> int:
        raise BaseExceptionGroup("both", [KeyboardInterrupt(), RuntimeError("a real failure")])

    monkeypatch.setattr(runner, "run_soak", broken)
    with pytest.raises(BaseExceptionGroup):
        main(["soak", "--minutes", "1", "--rate", "100"])


def test_an_interrupt_beside_cancelled_tasks_is_an_interrupt_but_not_one_behind_a_failure() -> None:
    from webhooks.cli import _interrupted

    assert _interrupted(KeyboardInterrupt())
    assert _interrupted(BaseExceptionGroup("g", [KeyboardInterrupt(), trio.Cancelled._create()]))
    assert not _interrupted(BaseExceptionGroup("g", [trio.Cancelled._create()]))  # no Ctrl-C at all
    assert not _interrupted(BaseExceptionGroup("g", [KeyboardInterrupt(), ValueError("real")]))
    try:
        try:
            raise ValueError("the soak failed")
        except ValueError:
            raise KeyboardInterrupt from None  # noqa: TRY301 - Ctrl-C during its teardown
    except KeyboardInterrupt as interrupt:
        assert interrupt.__context__ is not None and not _interrupted(interrupt)
