"""ResilientApiClient on trio's autojump clock: retries, the breaker around each attempt, and
cancelled or slow attempts (these drove the breaker's permits: see test_breaker_actor)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from prometheus_client import REGISTRY
from trio.testing import wait_all_tasks_blocked

from ingest import circuit_breaker as rules
from ingest.api_client import ResilientApiClient
from ingest.breaker_actor import CircuitBreakerActor
from shared.domain import Outcome
from shared.errors import BadGateway, CircuitOpen, GatewayTimeout, NotFound
from shared.settings import Settings
from tests.ingest.fake_api import FakeApi, after, cancelled_after, cancelled_as, transient

SETTINGS = Settings(api_retry_attempts=3, api_retry_base_delay_seconds=0.1, api_retry_max_delay_seconds=5,
                    api_timeout_seconds=10, breaker_failure_threshold=3, breaker_reset_timeout_seconds=30)
ONE_ATTEMPT = SETTINGS.replace(api_retry_attempts=1, api_timeout_seconds=60)
MAX_STEPS = 100  # far more await points than one call has: the sweeps end well before


async def run_with(script: list, config: rules.BreakerConfig, scenario, settings: Settings = SETTINGS) -> FakeApi:
    api = FakeApi(script)
    breaker = CircuitBreakerActor(config, name="test")
    async with trio.open_nursery() as nursery:
        await nursery.start(breaker.run)
        await scenario(ResilientApiClient(api, breaker, settings, rng=random.Random(7)), breaker)
        nursery.cancel_scope.cancel()
    return api


@asynccontextmanager
async def open_client(api: FakeApi, config: rules.BreakerConfig,
                      settings: Settings = ONE_ATTEMPT
                      ) -> AsyncIterator[tuple[ResilientApiClient, CircuitBreakerActor]]:
    breaker = CircuitBreakerActor(config, name="test")
    async with trio.open_nursery() as nursery:
        await nursery.start(breaker.run)
        yield ResilientApiClient(api, breaker, settings, rng=random.Random(7)), breaker
        nursery.cancel_scope.cancel()


async def fail_once(client: ResilientApiClient) -> None:
    with pytest.raises(BadGateway):
        await client.send_order_update(None)


async def test_retry_schedule_is_exact_with_seeded_jitter(autojump_clock: trio.abc.Clock) -> None:
    rng = random.Random(7)
    expected_delays = [0.1 * rng.uniform(0.75, 1.25), 0.2 * rng.uniform(0.75, 1.25)]

    async def scenario(client: ResilientApiClient, breaker: CircuitBreakerActor) -> None:
        assert await client.send_order_update(None) is Outcome.APPLIED

    api = await run_with([transient(), transient(), Outcome.APPLIED], rules.BreakerConfig(10, 30), scenario)
    gaps = [b - a for a, b in zip(api.calls, api.calls[1:], strict=False)]
    assert gaps == pytest.approx(expected_delays, abs=1e-9)


async def test_after_the_last_attempt_5xx_is_502_and_timeout_is_504(autojump_clock: trio.abc.Clock) -> None:
    async def scenario(client: ResilientApiClient, breaker: CircuitBreakerActor) -> None:
        with pytest.raises(BadGateway):
            await client.send_order_update(None)
        with pytest.raises(GatewayTimeout):
            await client.send_order_update(None)

    api = await run_with([transient()] * 3 + ["hang"] * 3, rules.BreakerConfig(100, 30), scenario)
    assert len(api.calls) == 6
    assert api.calls[5] - api.calls[3] == pytest.approx(20 + 0.1 * 0.75 + 0.2 * 0.75, abs=0.5)  # two 10 s timeouts


async def test_answers_about_the_event_are_not_retried(autojump_clock: trio.abc.Clock) -> None:
    async def scenario(client: ResilientApiClient, breaker: CircuitBreakerActor) -> None:
        with pytest.raises(NotFound):
            await client.send_order_update(None)
        assert await client.send_order_update(None) is Outcome.DUPLICATE

    api = await run_with([NotFound("order x not found"), Outcome.DUPLICATE], rules.BreakerConfig(1, 30), scenario)
    assert len(api.calls) == 2  # and the breaker (threshold 1) stayed closed


async def test_breaker_opens_fails_fast_half_opens_and_recovers(autojump_clock: trio.abc.Clock) -> None:
    one_attempt = SETTINGS.replace(api_retry_attempts=1)

    async def scenario(client: ResilientApiClient, breaker: CircuitBreakerActor) -> None:
        for _ in range(3):
            with pytest.raises(BadGateway):
                await client.send_order_update(None)
        await wait_all_tasks_blocked()  # the actor has handled every report
        assert breaker.state is rules.State.OPEN
        assert REGISTRY.get_sample_value("circuit_breaker_state", {"breaker": "test", "state": "open"}) == 1
        opened = trio.current_time()
        with pytest.raises(CircuitOpen) as refused:
            await client.send_order_update(None)
        assert refused.value.retry_after_seconds == 30 and trio.current_time() == opened  # immediate
        await trio.sleep(29.5)
        with pytest.raises(CircuitOpen):
            await client.send_order_update(None)
        await trio.sleep(0.5)
        # half-open: one trial (max 1); it fails, so the circuit opens again for 30 s
        with pytest.raises(BadGateway):
            await client.send_order_update(None)
        await wait_all_tasks_blocked()  # the actor has handled every report
        assert breaker.state is rules.State.OPEN
        await trio.sleep(30)
        assert await client.send_order_update(None) is Outcome.APPLIED
        await wait_all_tasks_blocked()
        assert breaker.state is rules.State.CLOSED

    api = await run_with([transient()] * 4, rules.BreakerConfig(3, 30, 1), scenario, one_attempt)
    assert len(api.calls) == 5  # refused calls never reached the api


async def test_half_open_limits_concurrent_trials(autojump_clock: trio.abc.Clock) -> None:
    async def scenario(client: ResilientApiClient, breaker: CircuitBreakerActor) -> None:
        with pytest.raises(BadGateway):
            await client.send_order_update(None)
        await trio.sleep(30)
        results: list[str] = []

        async def call() -> None:
            try:
                results.append((await client.send_order_update(None)).value)
            except CircuitOpen:
                results.append("refused")

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(call)
        assert sorted(results) == ["applied", "applied", "refused", "refused"]

    one_attempt = SETTINGS.replace(api_retry_attempts=1)
    await run_with([transient(), "slow", "slow"], rules.BreakerConfig(1, 30, 2), scenario, one_attempt)


# The two bugs of issue 12 (a leaked trial slot; a stale success closing the circuit), and a
# cancellation counted as a failure: at every await point of one call, and as the actor answers.


async def test_a_trial_cancelled_at_any_await_point_frees_its_slot_and_counts_nothing(
        autojump_clock: trio.abc.Clock) -> None:
    """Half-open, one trial slot: a cancelled trial must leave the slot to the next caller."""
    for steps in range(1, MAX_STEPS):
        async with open_client(FakeApi([transient()], then="slow"), rules.BreakerConfig(1, 30, 1)) as (client, breaker):
            await fail_once(client)
            await trio.sleep(30)
            hit = await cancelled_after(steps, lambda: client.send_order_update(None))
            assert await client.send_order_update(None) is Outcome.APPLIED, f"cancelled after {steps} steps"
            await wait_all_tasks_blocked()
            assert breaker.state is rules.State.CLOSED
        if not hit:
            return
    raise AssertionError("the call never completed")


async def test_a_trial_cancelled_while_the_actor_answers_it_frees_its_slot(autojump_clock: trio.abc.Clock) -> None:
    """Deterministically, the interleaving that leaked: the caller's wait is cancelled just as the
    actor sends its permit, so the permit waits, unread, in the caller's reply channel."""
    async with open_client(FakeApi([transient()]), rules.BreakerConfig(1, 30, 1)) as (client, breaker):
        await fail_once(client)
        await trio.sleep(30)
        assert await cancelled_as("CircuitBreakerActor.run", lambda: client.send_order_update(None))
        assert await client.send_order_update(None) is Outcome.APPLIED
        await wait_all_tasks_blocked()
        assert breaker.state is rules.State.CLOSED


async def test_a_call_cancelled_at_any_await_point_counts_no_failure(autojump_clock: trio.abc.Clock) -> None:
    """Closed, threshold 2, one failure so far: a cancelled call neither opens nor resets the count."""
    for steps in range(1, MAX_STEPS):
        api = FakeApi([transient()], then="slow")
        async with open_client(api, rules.BreakerConfig(2, 30)) as (client, breaker):
            await fail_once(client)
            if not await cancelled_after(steps, lambda: client.send_order_update(None)):
                return  # the call completed (a success, which resets the count)
            await wait_all_tasks_blocked()
            assert breaker.state is rules.State.CLOSED, f"cancelled after {steps} steps"
            api.script.append(transient())
            await fail_once(client)
            await wait_all_tasks_blocked()
            assert breaker.state is rules.State.OPEN, f"cancelled after {steps} steps"
    raise AssertionError("the call never completed")


async def test_a_success_admitted_before_the_circuit_opened_does_not_close_it(autojump_clock: trio.abc.Clock) -> None:
    api = FakeApi([after(5, Outcome.APPLIED), transient(), transient()])
    async with open_client(api, rules.BreakerConfig(2, 30)) as (client, breaker), trio.open_nursery() as nursery:
        nursery.start_soon(client.send_order_update, None)  # admitted while closed; answers at t=5
        await wait_all_tasks_blocked()
        await fail_once(client)
        await fail_once(client)
        await wait_all_tasks_blocked()
        assert breaker.state is rules.State.OPEN
        await trio.sleep(6)  # the slow call has succeeded meanwhile
        assert breaker.state is rules.State.OPEN
        with pytest.raises(CircuitOpen) as refused:
            await client.send_order_update(None)
        assert refused.value.retry_after_seconds == 24
    assert len(api.calls) == 3


async def test_a_failure_admitted_before_the_circuit_opened_does_not_reopen_it(autojump_clock: trio.abc.Clock) -> None:
    api = FakeApi([after(40, transient()), transient(), transient(), after(15, Outcome.APPLIED)])
    async with open_client(api, rules.BreakerConfig(2, 30)) as (client, breaker), trio.open_nursery() as nursery:
        nursery.start_soon(fail_once, client)  # admitted while closed; fails at t=40
        await wait_all_tasks_blocked()
        await fail_once(client)
        await fail_once(client)
        await trio.sleep(30)
        nursery.start_soon(client.send_order_update, None)  # the trial, t=30 → 45
        await trio.sleep(11)  # t=41: the old call has failed
        assert breaker.state is rules.State.HALF_OPEN
        await trio.sleep(5)
        assert breaker.state is rules.State.CLOSED


def api_calls() -> dict[str, float]:
    return {result: REGISTRY.get_sample_value("ingest_api_calls_total", {"result": result}) or 0.0
            for result in ("ok", "failed", "cancelled")}


async def test_attempts_are_counted_by_how_they_went(autojump_clock: trio.abc.Clock) -> None:
    before = api_calls()
    async with open_client(FakeApi([Outcome.APPLIED, NotFound("x"), transient()], then="hang"),
                           rules.BreakerConfig(10, 30)) as (client, breaker):
        assert await client.send_order_update(None) is Outcome.APPLIED
        with pytest.raises(NotFound):
            await client.send_order_update(None)
        await fail_once(client)
        with trio.move_on_after(1):
            await client.send_order_update(None)
    counted = {result: count - before[result] for result, count in api_calls().items()}
    assert counted == {"ok": 2, "failed": 1, "cancelled": 1}
