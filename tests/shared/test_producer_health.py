"""The producer-health table, driven with no loop and no clock."""

from __future__ import annotations

import pytest

from shared.producer_health import (
    TRANSITIONS,
    Backoff,
    Delivered,
    Fatal,
    Health,
    IdAssigned,
    IllegalTransition,
    Phase,
    Recreated,
)

FENCED = Fatal("PRODUCER_FENCED: fenced")


def test_a_fatal_error_is_replaced_at_once_the_first_time() -> None:
    health = Health().step(FENCED, 100.0)
    assert health.phase is Phase.PENDING and health.due(100.0)
    assert health.problem() == "producer recreation pending after fatal error: PRODUCER_FENCED: fenced"


def test_the_replacement_is_not_trusted_until_the_broker_confirms_it() -> None:
    health = Health().step(FENCED, 0.0).step(Recreated(), 0.0)
    assert health.phase is Phase.RECOVERING and not health.due(0.0) and health.recreations == 1
    assert health.problem() == "producer recreated after fatal error (until the broker confirms it): " \
                               "PRODUCER_FENCED: fenced"
    assert health.step(Delivered(), 1.0).problem() is None
    assert health.step(IdAssigned(), 1.0).problem() is None


def test_replacements_without_a_delivery_back_off_and_a_delivery_resets_it() -> None:
    health, now, waits = Health(), 0.0, []
    for _ in range(7):
        health = health.step(FENCED, now)
        waits.append(health.not_before - now)
        assert health.due(health.not_before) and (waits[-1] == 0 or not health.due(health.not_before - 0.001))
        now = max(now, health.not_before)
        health = health.step(Recreated(), now).step(IdAssigned(), now)  # confirmed, yet fenced again at once
    assert waits == [0, 1, 2, 4, 5, 5, 5]  # capped: back within seconds of the broker, however many fences
    health = health.step(Delivered(), now).step(FENCED, now)
    assert health.due(now)


def test_a_dead_producers_late_acknowledgements_do_not_revive_it() -> None:
    health = Health().step(FENCED, 0.0)
    assert health.step(Delivered(), 0.0) == health and health.step(IdAssigned(), 0.0) == health


def test_the_first_reason_stands_while_pending() -> None:
    health = Health().step(FENCED, 0.0).step(Fatal("_FATAL: later"), 0.0)
    assert health.reason == "PRODUCER_FENCED: fenced"


@pytest.mark.parametrize(("phase", "event"), [
    (Phase.HEALTHY, Recreated()), (Phase.RECOVERING, Recreated()),
])
def test_illegal_moves_raise(phase: Phase, event: object) -> None:
    with pytest.raises(IllegalTransition):
        Health(phase=phase).step(event, 0.0)  # type: ignore[arg-type]


def test_the_table_covers_every_phase_and_event_but_the_illegal_ones() -> None:
    events = {Fatal, Recreated, Delivered, IdAssigned}
    missing = {(phase, event) for phase in Phase for event in events} - set(TRANSITIONS)
    assert missing == {(Phase.HEALTHY, Recreated), (Phase.RECOVERING, Recreated)}


def test_backoff_is_capped() -> None:
    assert [Backoff(0.5, 3.0).after(n) for n in range(5)] == [0, 0.5, 1.0, 2.0, 3.0]
