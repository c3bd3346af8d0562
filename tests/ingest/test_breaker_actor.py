"""The breaker actor on trio's autojump clock: permits, cancelled callers, stale reports, trial limits, metrics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio
from prometheus_client import REGISTRY
from trio.testing import wait_all_tasks_blocked

from ingest import circuit_breaker as rules
from ingest.api_client import BREAKER_ANSWERS
from ingest.breaker_actor import BreakerStatistics, CircuitBreakerActor, result_of
from shared.errors import BadGateway, CircuitOpen, GatewayTimeout, InvalidInput, InvalidTransition, NotFound
from shared.problems import problem_for
from shared.retry_policy import TransientFailure
from tests.ingest.fake_api import cancelled_after, transient

MAX_STEPS = 100  # far more await points than one call has: the sweeps end well before
THRESHOLD = 2
CONFIG = rules.BreakerConfig(failure_threshold=THRESHOLD, reset_timeout_seconds=30, half_open_max_calls=2)


@asynccontextmanager
async def open_breaker(config: rules.BreakerConfig = CONFIG, name: str = "test") -> AsyncIterator[CircuitBreakerActor]:
    breaker = CircuitBreakerActor(config, name=name)
    async with trio.open_nursery() as nursery:
        await nursery.start(breaker.run)
        yield breaker
        nursery.cancel_scope.cancel()


async def settled(breaker: CircuitBreakerActor) -> BreakerStatistics:
    """The breaker's statistics once the actor has handled every message sent so far."""
    await wait_all_tasks_blocked()
    statistics = breaker.statistics()
    assert statistics.inbox_depth == 0
    return statistics


async def call(breaker: CircuitBreakerActor, leaving: BaseException | None = None, seconds: float = 0) -> rules.Permit:
    """One call through a permit: it takes ``seconds``, then leaves the block raising ``leaving``."""
    async with breaker.permit(answers=BREAKER_ANSWERS) as permit:
        await trio.sleep(seconds)
        if leaving is not None:
            raise leaving
    return permit


async def failing_call(breaker: CircuitBreakerActor, seconds: float = 0) -> None:
    with pytest.raises(TransientFailure):
        await call(breaker, transient(), seconds)


async def open_circuit(breaker: CircuitBreakerActor) -> None:
    for _ in range((await settled(breaker)).consecutive_failures, THRESHOLD):
        await failing_call(breaker)
    assert (await settled(breaker)).state is rules.State.OPEN


async def test_a_permit_carries_the_generation_and_the_trial_flag(autojump_clock: trio.abc.Clock) -> None:
    async with open_breaker() as breaker:
        assert await call(breaker) == rules.Permit(generation=0, trial=False)
        await open_circuit(breaker)
        await trio.sleep(30)
        async with breaker.permit() as permit:
            assert permit == rules.Permit(generation=2, trial=True)
            assert (await settled(breaker)).trials_in_flight == 1
        assert await settled(breaker) == BreakerStatistics(rules.State.CLOSED, 3, 0, 0, 0)


@pytest.mark.parametrize(("leaving", "failures"), [
    pytest.param(None, 0, id="success"),
    pytest.param(NotFound("order x not found"), 0, id="404-answer"),
    pytest.param(InvalidTransition("paid → created"), 0, id="422-answer"),
    pytest.param(InvalidInput("bad body"), 0, id="400-answer"),
    pytest.param(BadGateway("unexpected answer from the api: 401"), 0, id="unknown-answer"),
    pytest.param(transient(), 2, id="5xx-or-unreachable"),
    pytest.param(TransientFailure(GatewayTimeout("too slow")), 2, id="timeout"),
    pytest.param(KeyError("outcome"), 2, id="unexpected"),
    pytest.param("cancelled", 1, id="cancelled"),
])
async def test_leaving_the_block_reports_by_what_left_it(autojump_clock: trio.abc.Clock,
                                                         leaving: Exception | str | None, failures: int) -> None:
    """After one failure: a success or an answer resets the count, a failure adds one, a cancellation neither."""
    async with open_breaker(rules.BreakerConfig(3, 30)) as breaker:
        await failing_call(breaker)
        if leaving == "cancelled":
            with trio.move_on_after(0.5):
                await call(breaker, seconds=1)
        else:
            with contextlib.suppress(Exception):
                await call(breaker, leaving)  # type: ignore[arg-type]
        assert (await settled(breaker)).consecutive_failures == failures


async def test_a_cancellation_even_in_a_group_releases_an_answer_in_a_group_is_a_failure() -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await trio.lowlevel.checkpoint()
        except trio.Cancelled as exc:
            cancelled = exc
            raise
    assert result_of(cancelled, BREAKER_ANSWERS) is rules.Result.RELEASED
    assert result_of(BaseExceptionGroup("", [cancelled, ValueError()]), BREAKER_ANSWERS) is rules.Result.RELEASED
    assert result_of(ExceptionGroup("", [NotFound("x")]), BREAKER_ANSWERS) is rules.Result.FAILURE
    assert result_of(KeyboardInterrupt(), BREAKER_ANSWERS) is rules.Result.RELEASED


@pytest.mark.parametrize("where", ["closed", "half_open"])
async def test_a_permit_cancelled_at_any_await_point_of_acquire_or_call_is_released(
        autojump_clock: trio.abc.Clock, where: str) -> None:
    """Cancel after 1, 2, 3… task steps, until the call completes: nothing leaks, nothing is counted."""
    for steps in range(1, MAX_STEPS):
        async with open_breaker() as breaker:
            await failing_call(breaker)
            if where == "half_open":
                await open_circuit(breaker)
                await trio.sleep(30)
                expected = BreakerStatistics(rules.State.HALF_OPEN, 2, 0, 0, 0)  # the ask moved it, no more
            else:
                expected = await settled(breaker)  # closed with one failure
            if not await cancelled_after(steps, lambda: call(breaker, seconds=1)):
                return
            assert await settled(breaker) == expected, f"cancelled after {steps} steps"
            assert await call(breaker) == rules.Permit(expected.generation, trial=where == "half_open")
    raise AssertionError("the call never completed")


async def test_an_ask_whose_caller_left_before_the_answer_is_released_by_the_actor(
        autojump_clock: trio.abc.Clock) -> None:
    """Cancelled before acquiring: the ask still goes out, and the actor's answer finds no one."""
    async with open_breaker() as breaker:
        await open_circuit(breaker)
        await trio.sleep(30)
        with trio.CancelScope() as scope:
            scope.cancel()
            await call(breaker)
        assert await settled(breaker) == BreakerStatistics(rules.State.HALF_OPEN, 2, 0, 0, 0)
        assert await call(breaker) == rules.Permit(2, trial=True)


async def test_concurrent_callers_at_the_trial_limit(autojump_clock: trio.abc.Clock) -> None:
    async with open_breaker() as breaker:
        await open_circuit(breaker)
        await trio.sleep(30)
        admitted: list[rules.Permit] = []
        refused: list[int] = []

        async def caller(seconds: float) -> None:
            try:
                admitted.append(await call(breaker, seconds=seconds))
            except CircuitOpen as exc:
                refused.append(exc.retry_after_seconds)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(caller, 5)
            nursery.start_soon(caller, 10)
            await wait_all_tasks_blocked()  # both hold a trial permit
            for _ in range(3):
                nursery.start_soon(caller, 0)
            await wait_all_tasks_blocked()
            assert refused == [1, 1, 1] and (await settled(breaker)).trials_in_flight == 2
            await trio.sleep(5)  # the first trial succeeds: closed, a new generation
            assert await settled(breaker) == BreakerStatistics(rules.State.CLOSED, 3, 0, 0, 0)
        assert admitted == [rules.Permit(2, trial=True)] * 2
        assert await settled(breaker) == BreakerStatistics(rules.State.CLOSED, 3, 0, 0, 0)  # 2nd: stale


async def test_a_cancelled_trial_at_the_limit_lets_the_next_caller_in(autojump_clock: trio.abc.Clock) -> None:
    async with open_breaker() as breaker, trio.open_nursery() as nursery:
        await open_circuit(breaker)
        await trio.sleep(30)
        scopes = [trio.CancelScope(), trio.CancelScope()]
        for scope in scopes:
            nursery.start_soon(partial(_within, scope, call(breaker, seconds=10)))
        await wait_all_tasks_blocked()
        with pytest.raises(CircuitOpen):
            await call(breaker)
        scopes[0].cancel()
        await wait_all_tasks_blocked()  # the cancelled trial has left its block
        assert await call(breaker) == rules.Permit(2, trial=True)  # closes the circuit
        assert (await settled(breaker)).state is rules.State.CLOSED


async def _within(scope: trio.CancelScope, awaitable: Awaitable[object]) -> None:
    with scope:
        await awaitable


async def test_a_late_trial_failure_cannot_reopen_a_circuit_another_trial_closed(
        autojump_clock: trio.abc.Clock) -> None:
    async with open_breaker() as breaker, trio.open_nursery() as nursery:
        await open_circuit(breaker)
        await trio.sleep(30)
        nursery.start_soon(partial(call, breaker, seconds=1))
        nursery.start_soon(partial(failing_call, breaker, seconds=2))
        await trio.sleep(3)
        assert await settled(breaker) == BreakerStatistics(rules.State.CLOSED, 3, 0, 0, 0)


def state_gauges(name: str) -> list[float | None]:
    return [REGISTRY.get_sample_value("circuit_breaker_state", {"breaker": name, "state": s.value})
            for s in rules.State]


def transitions(name: str, before: rules.State, after: rules.State) -> float | None:
    labels = {"breaker": name, "from_state": before.value, "to_state": after.value}
    return REGISTRY.get_sample_value("circuit_breaker_transitions_total", labels)


async def test_open_then_half_open_then_reopened_then_closed_on_the_clock_with_metrics(
        autojump_clock: trio.abc.Clock) -> None:
    name = "test-metrics"
    closed, open_, half_open = rules.State
    async with open_breaker(name=name) as breaker:
        assert state_gauges(name) == [1, 0, 0]
        await open_circuit(breaker)
        opened = trio.current_time()
        assert state_gauges(name) == [0, 1, 0]
        with pytest.raises(CircuitOpen) as refused:
            await call(breaker)
        assert trio.current_time() == opened  # fails fast: 503 + Retry-After
        assert problem_for(refused.value)[1:] == (503, {"Content-Type": "application/problem+json",
                                                         "Retry-After": "30"})
        await trio.sleep(29.5)
        with pytest.raises(CircuitOpen) as refused:
            await call(breaker)
        assert refused.value.retry_after_seconds == 1  # 0.5 s left, rounded up
        await trio.sleep(0.5)
        async with breaker.permit():  # a first trial…
            assert (await settled(breaker)).state is half_open and state_gauges(name) == [0, 0, 1]
            await failing_call(breaker)  # …and a second one, which fails: open again
        # (the first trial's success, reported after that, is stale)
        assert (await settled(breaker)).state is open_ and state_gauges(name) == [0, 1, 0]
        with pytest.raises(CircuitOpen) as refused:
            await call(breaker)
        assert refused.value.retry_after_seconds == 30  # the reset timeout starts again
        await trio.sleep(30)
        await call(breaker, seconds=1)  # the trial succeeds
        assert (await settled(breaker)).state is closed and state_gauges(name) == [1, 0, 0]
    assert [transitions(name, *move) for move in [(closed, open_), (open_, half_open), (half_open, open_),
                                                  (half_open, closed), (open_, closed)]] == [1, 2, 1, 1, None]


async def test_changed_wakes_its_waiters_at_every_state_change_and_only_then(autojump_clock: trio.abc.Clock) -> None:
    async with open_breaker(rules.BreakerConfig(THRESHOLD, 30, half_open_max_calls=1)) as breaker:
        woke: list[tuple[float, rules.State]] = []

        async def waiter() -> None:
            while True:
                await breaker.changed()
                woke.append((trio.current_time(), breaker.state))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await wait_all_tasks_blocked()
            await failing_call(breaker)  # one failure below the threshold: no state change
            await wait_all_tasks_blocked()
            assert woke == []
            await open_circuit(breaker)
            await trio.sleep(30)
            with pytest.raises(TransientFailure):
                async with breaker.permit():  # the trial (half-open) fails: open again
                    raise transient()
            await wait_all_tasks_blocked()
            await trio.sleep(30)
            await call(breaker)  # a trial that succeeds: closed
            await wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    states = [state for _, state in woke]
    assert states == [rules.State.OPEN, rules.State.HALF_OPEN, rules.State.OPEN, rules.State.HALF_OPEN,
                      rules.State.CLOSED]


async def test_retry_after_is_spread_over_the_configured_window_beyond_the_reset_timeout(
        autojump_clock: trio.abc.Clock) -> None:
    """Callers refused together are told different moments — from the trial on, over the spread —
    so a backlog does not come back in one instant; without a spread they are told the trial."""
    spread = rules.BreakerConfig(THRESHOLD, reset_timeout_seconds=30, retry_after_spread_seconds=10)
    async with open_breaker(spread) as breaker:
        await open_circuit(breaker)
        await trio.sleep(20)  # 10 s until the trial
        told = set()
        for _ in range(200):
            refused = breaker.refusal()
            assert refused is not None
            told.add(refused.retry_after_seconds)
            with pytest.raises(CircuitOpen) as asked:
                await call(breaker)
            told.add(asked.value.retry_after_seconds)
        assert told == set(range(11, 21))  # ceil(10 + a share of 10): never before the trial
    async with open_breaker() as exact:
        await open_circuit(exact)
        await trio.sleep(20)
        refused = exact.refusal()
        assert refused is not None and refused.retry_after_seconds == 10


@pytest.mark.parametrize("spread", ["9" * 400, "99999999999999999999m"])
async def test_an_enormous_spread_setting_still_gives_a_day_at_most(autojump_clock: trio.abc.Clock,
                                                                    spread: str) -> None:
    from shared.settings import Settings

    seconds = Settings.from_environ({"BREAKER_RETRY_AFTER_SPREAD": spread}).breaker_retry_after_spread_seconds
    async with open_breaker(rules.BreakerConfig(THRESHOLD, 30, retry_after_spread_seconds=seconds)) as breaker:
        await open_circuit(breaker)
        refused = breaker.refusal()
        assert refused is not None and 30 <= refused.retry_after_seconds <= 86_400


@pytest.mark.parametrize("spread", [-1.0, float("nan")])
def test_a_negative_or_undefined_spread_is_refused(spread: float) -> None:
    with pytest.raises(ValueError, match="spread"):
        rules.BreakerConfig(retry_after_spread_seconds=spread)


async def test_refusal_while_open_leaves_half_open_and_a_due_trial_to_the_actor(autojump_clock: trio.abc.Clock) -> None:
    async with open_breaker(rules.BreakerConfig(THRESHOLD, 30, half_open_max_calls=1)) as breaker:
        assert breaker.refusal_while_open() is None  # closed
        await open_circuit(breaker)
        refused = breaker.refusal_while_open()
        assert refused is not None and refused.retry_after_seconds == 30
        assert breaker.refuses_for(29) and not breaker.refuses_for(30)  # the trial is due by then
        await trio.sleep(30)
        assert breaker.refusal_while_open() is None  # still OPEN in the actor, but the trial is due
        assert not breaker.refuses_for(0)
        async with breaker.permit():  # the trial, in flight: half-open
            assert breaker.refusal() is not None and breaker.refusal_while_open() is None
            assert not breaker.refuses_for(0)
