"""``webhooks soak`` refuses a length or rate that cannot run, before starting anything."""

from __future__ import annotations

import pytest

from webhooks.cli import main


@pytest.mark.parametrize("argv", [["soak", "--minutes", "0"], ["soak", "--rate", "-5"]])
def test_a_soak_that_cannot_run_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "must be positive" in capsys.readouterr().err
