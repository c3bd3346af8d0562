"""The breaker's rules (pure), then the actor and the retrying client on trio's autojump clock."""

from __future__ import annotations

import random

import pytest
from prometheus_client import REGISTRY
import trio
from trio.testing import wait_all_tasks_blocked

from ingest import circuit_breaker as rules
from ingest.api_client import ResilientApiClient
from ingest.breaker_actor import CircuitBreakerActor
from shared.retry_policy import TransientFailure
from shared.domain import Outcome
from shared.errors import BadGateway, CircuitOpen, GatewayTimeout, NotFound
from shared.settings import Settings

CONFIG = rules.BreakerConfig(failure_threshold=3, reset_timeout_seconds=30, half_open_max_calls=2)


def test_opens_after_consecutive_failures_only() -> None:
    breaker = rules.Breaker(CONFIG)
    for _ in range(2):
        breaker = rules.failed(breaker, 0)
    breaker = rules.succeeded(breaker, 0)  # a success resets the count
    for _ in range(2):
        breaker = rules.failed(breaker, 0)
    assert breaker.state is rules.State.CLOSED
    breaker = rules.failed(breaker, 10)
    assert breaker.state is rules.State.OPEN
    breaker, decision = rules.request(breaker, 25)
    assert decision == rules.Decision(False, 15)


def test_half_open_admits_a_bounded_number_of_trials() -> None:
    breaker = rules.Breaker(CONFIG, rules.State.OPEN, 3, opened_at=0)
    breaker, first = rules.request(breaker, 30)
    breaker, second = rules.request(breaker, 30)
    breaker, third = rules.request(breaker, 30)
    assert (first.allowed, second.allowed, third.allowed) == (True, True, False)
    assert breaker.state is rules.State.HALF_OPEN
    assert rules.succeeded(breaker, 31).state is rules.State.CLOSED
    reopened = rules.failed(breaker, 31)
    assert (reopened.state, reopened.opened_at) == (rules.State.OPEN, 31)


class FakeApi:
    """An in-memory ApiClient: answers from a script of results, one per call, and logs call times."""

    def __init__(self, script: list[Outcome | Exception]) -> None:
        self.script = list(script)
        self.calls: list[float] = []

    async def _next(self) -> Outcome:
        self.calls.append(trio.current_time())
        result = self.script.pop(0) if self.script else Outcome.APPLIED
        if isinstance(result, Exception):
            raise result
        if result == "hang":
            await trio.sleep_forever()
        if result == "slow":  # answers after a second, so calls overlap
            await trio.sleep(1)
            return Outcome.APPLIED
        return result

    async def send_order_update(self, update: object) -> Outcome:
        return await self._next()

    async def send_dispute_update(self, update: object) -> Outcome:
        return await self._next()

    async def aclose(self) -> None:
        pass


def transient() -> TransientFailure:
    return TransientFailure(BadGateway("api answered 500"))


SETTINGS = Settings(api_retry_attempts=3, api_retry_base_delay_seconds=0.1, api_retry_max_delay_seconds=5,
                    api_timeout_seconds=10, breaker_failure_threshold=3, breaker_reset_timeout_seconds=30)


async def run_with(script: list, config: rules.BreakerConfig, scenario, settings: Settings = SETTINGS) -> FakeApi:
    api = FakeApi(script)
    breaker = CircuitBreakerActor(config, name="test")
    async with trio.open_nursery() as nursery:
        await nursery.start(breaker.run)
        await scenario(ResilientApiClient(api, breaker, settings, rng=random.Random(7)), breaker)
        nursery.cancel_scope.cancel()
    return api


async def test_retry_schedule_is_exact_with_seeded_jitter(autojump_clock: trio.abc.Clock) -> None:
    rng = random.Random(7)
    expected_delays = [0.1 * rng.uniform(0.75, 1.25), 0.2 * rng.uniform(0.75, 1.25)]

    async def scenario(client: ResilientApiClient, breaker: CircuitBreakerActor) -> None:
        assert await client.send_order_update(None) is Outcome.APPLIED

    api = await run_with([transient(), transient(), Outcome.APPLIED], rules.BreakerConfig(10, 30), scenario)
    gaps = [b - a for a, b in zip(api.calls, api.calls[1:])]
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
