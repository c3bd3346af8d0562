"""The breaker's rules, pure: driven with no loop and no clock (``now`` passed in)."""

from __future__ import annotations

import pytest

from ingest import circuit_breaker as rules
from ingest.circuit_breaker import Event, IllegalTransition, Permit, Result, State

CONFIG = rules.BreakerConfig(failure_threshold=3, reset_timeout_seconds=30, half_open_max_calls=2)


def fail(breaker: rules.Breaker, times: int, now: float = 0) -> rules.Breaker:
    """``times`` calls admitted and failed, one after the other."""
    for _ in range(times):
        breaker, decision = rules.request(breaker, now)
        assert decision.permit is not None
        breaker = rules.report(breaker, decision.permit, Result.FAILURE, now)
    return breaker


def opened(at: float = 0) -> rules.Breaker:
    return fail(rules.Breaker(CONFIG), CONFIG.failure_threshold, at)


def half_open(trials: int = 1) -> tuple[rules.Breaker, list[Permit]]:
    """Open at t=0, then ``trials`` trial permits taken at t=30."""
    breaker, permits = opened(), []
    for _ in range(trials):
        breaker, decision = rules.request(breaker, 30)
        assert decision.permit is not None
        permits.append(decision.permit)
    return breaker, permits


def test_opens_after_consecutive_failures_only() -> None:
    breaker = fail(rules.Breaker(CONFIG), 2)
    breaker, decision = rules.request(breaker, 0)
    assert decision.permit is not None
    breaker = rules.report(breaker, decision.permit, Result.SUCCESS, 0)  # a success resets the count
    breaker = fail(breaker, 2)
    assert (breaker.state, breaker.failures) == (State.CLOSED, 2)
    breaker = fail(breaker, 1, now=10)
    assert (breaker.state, breaker.opened_at) == (State.OPEN, 10)
    breaker, decision = rules.request(breaker, 25)
    assert decision == rules.Decision(None, 15) and not decision.allowed


def test_after_the_reset_timeout_a_call_is_a_trial_of_a_new_generation() -> None:
    breaker = opened()
    assert rules.request(breaker, 29.9)[1].retry_after_seconds == pytest.approx(0.1)
    breaker, decision = rules.request(breaker, 30)
    assert breaker.state is State.HALF_OPEN and breaker.trials == 1
    assert decision.permit == Permit(generation=2, trial=True)  # closed 0 → open 1 → half-open 2


def test_half_open_admits_a_bounded_number_of_trials() -> None:
    breaker, permits = half_open(trials=2)
    assert permits == [Permit(2, True), Permit(2, True)]
    breaker, third = rules.request(breaker, 31)
    assert third == rules.Decision(None, rules.TRIALS_BUSY_RETRY_AFTER_SECONDS)
    assert (breaker.state, breaker.trials) == (State.HALF_OPEN, 2)


@pytest.mark.parametrize(("result", "state", "generation"), [(Result.SUCCESS, State.CLOSED, 3),
                                                             (Result.FAILURE, State.OPEN, 3)])
def test_a_trial_closes_or_reopens_the_circuit(result: Result, state: State, generation: int) -> None:
    breaker, (trial, _) = half_open(trials=2)
    breaker = rules.report(breaker, trial, result, 40)
    assert (breaker.state, breaker.generation, breaker.failures, breaker.trials) == (state, generation, 0, 0)
    if state is State.OPEN:
        assert breaker.opened_at == 40  # another full reset timeout from now


def test_a_released_trial_frees_its_slot_and_counts_nothing() -> None:
    breaker, (first, second) = half_open(trials=2)
    breaker = rules.report(breaker, first, Result.RELEASED, 31)
    assert (breaker.state, breaker.generation, breaker.trials) == (State.HALF_OPEN, 2, 1)
    breaker, again = rules.request(breaker, 31)
    assert again.permit == Permit(2, True)


def test_a_released_call_keeps_the_failure_count() -> None:
    breaker = fail(rules.Breaker(CONFIG), 2)
    breaker, decision = rules.request(breaker, 0)
    assert decision.permit == Permit(0, False)
    breaker = rules.report(breaker, decision.permit, Result.RELEASED, 0)
    assert (breaker.state, breaker.failures) == (State.CLOSED, 2)
    assert fail(breaker, 1).state is State.OPEN


def _stale_closed() -> rules.Breaker:
    breaker, (trial,) = half_open()
    return rules.report(breaker, trial, Result.SUCCESS, 31)  # closed again, generation 3


@pytest.mark.parametrize("result", list(Result))
@pytest.mark.parametrize("breaker", [opened(), half_open()[0], _stale_closed(), fail(_stale_closed(), 2)],
                         ids=["open", "half_open", "closed", "closed_with_failures"])
def test_reports_of_an_older_generation_change_nothing(breaker: rules.Breaker, result: Result) -> None:
    """A call admitted while closed (generation 0) answers late, whatever the breaker became."""
    assert rules.report(breaker, Permit(0, trial=False), result, 99) == breaker


def test_a_trial_answering_after_another_reopened_the_circuit_changes_nothing() -> None:
    breaker, (first, second) = half_open(trials=2)
    breaker = rules.report(breaker, first, Result.FAILURE, 31)  # reopened, generation 3
    assert rules.report(breaker, second, Result.SUCCESS, 32) == breaker


def _released_trial() -> rules.Breaker:
    breaker, (trial,) = half_open()
    return rules.report(breaker, trial, Result.RELEASED, 31)


@pytest.mark.parametrize(("breaker", "permit"), [
    (opened(), Permit(1, trial=False)),  # open hands out no permit of its own generation
    (opened(), Permit(1, trial=True)),
    (rules.Breaker(CONFIG), Permit(0, trial=True)),  # closed hands out no trials
    (half_open()[0], Permit(2, trial=False)),  # half-open hands out only trials
    (rules.Breaker(CONFIG), Permit(1, trial=False)),  # a generation from the future
    (_released_trial(), Permit(2, trial=True)),  # the one trial, reported twice
], ids=["open", "open_trial", "closed_trial", "half_open_not_trial", "future", "reported_twice"])
def test_reports_the_breaker_cannot_have_asked_for_raise(breaker: rules.Breaker, permit: Permit) -> None:
    with pytest.raises(IllegalTransition):
        rules.report(breaker, permit, Result.SUCCESS, 50)


def test_every_state_change_starts_a_generation_and_nothing_else_does() -> None:
    changes = {(state, event) for (state, event), target in rules.TRANSITIONS.items() if target is not state}
    assert changes == {(State.CLOSED, Event.THRESHOLD_REACHED), (State.OPEN, Event.TRIAL_STARTED),
                       (State.HALF_OPEN, Event.TRIAL_SUCCEEDED), (State.HALF_OPEN, Event.TRIAL_FAILED)}
    for (state, event), target in rules.TRANSITIONS.items():
        moved = rules.step(rules.Breaker(CONFIG, state, generation=5, failures=1, trials=1), event, 7)
        assert moved.state is target
        assert moved.generation == (6 if target is not state else 5)


def test_every_state_ignores_stale_reports() -> None:
    assert all(rules.TRANSITIONS[state, Event.STALE] is state for state in State)


def test_refusal_tells_what_a_request_would_get_and_changes_nothing() -> None:
    config = rules.BreakerConfig(failure_threshold=1, reset_timeout_seconds=30)
    closed = rules.Breaker(config)
    assert rules.refusal(closed, 0.0) is None
    _, decision = rules.request(closed, 0.0)
    assert decision.permit is not None
    opened = rules.report(closed, decision.permit, rules.Result.FAILURE, 10.0)
    assert opened.state is rules.State.OPEN
    assert rules.refusal(opened, 20.0) == 20.0  # the rest of the reset timeout
    assert rules.refusal(opened, 40.0) is None  # a trial would be let through ...
    assert rules.refusal(opened, 40.0) is None and opened.trials == 0  # ... but none was taken
    half_open, trial = rules.request(opened, 40.0)
    assert rules.refusal(half_open, 40.0) == rules.TRIALS_BUSY_RETRY_AFTER_SECONDS
