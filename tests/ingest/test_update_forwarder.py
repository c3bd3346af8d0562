"""The forwarder actor on trio's autojump clock, against an in-memory batch api: natural batching,
each webhook's own outcome, retries and the breaker acting on batch calls, cancelled webhooks."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from ingest import circuit_breaker as rules
from ingest.breaker_actor import CircuitBreakerActor
from ingest.update_forwarder import UpdateForwarder
from shared.domain import Outcome
from shared.errors import (
    BadGateway,
    CircuitOpen,
    DatabaseUnavailable,
    InvalidInput,
    InvalidTransition,
    NotFound,
    UserMismatch,
    WebhookError,
)
from shared.retry_policy import TransientFailure
from shared.settings import Settings
from shared.update_batch import BatchItem, ItemResult
from tests.api.updates import at, order_update
from tests.ingest.fake_api import cancelled_after

SETTINGS = Settings(api_retry_attempts=3, api_retry_base_delay_seconds=0.1, api_timeout_seconds=10,
                    api_batch_max=8, api_calls_in_flight=1, api_next_call_after_seconds=0)
BREAKER = rules.BreakerConfig(3, 30)
Respond = Callable[[Sequence[BatchItem]], Awaitable[list[ItemResult]]]


class FakeBatchApi:
    """Answers each call with the next of ``script`` (then ``then``): a function of the items, or an
    exception to raise. Records (time, provider_event_ids) per call."""

    def __init__(self, script: list[Respond | Exception], then: Respond | None = None) -> None:
        self.script = list(script)
        self.then = then or applied_after(0)
        self.calls: list[tuple[float, list[str]]] = []

    async def send_updates(self, items: Sequence[BatchItem]) -> list[ItemResult]:
        self.calls.append((trio.current_time(), [i.update.provider_event_id for i in items]))
        step = self.script.pop(0) if self.script else self.then
        if isinstance(step, Exception):
            raise step
        return await step(items)

    async def aclose(self) -> None:
        pass


def applied_after(seconds: float) -> Respond:
    async def respond(items: Sequence[BatchItem]) -> list[ItemResult]:
        await trio.sleep(seconds)
        return [ItemResult(200, "applied")] * len(items)
    return respond


def by_event(results: dict[str, ItemResult]) -> Respond:
    async def respond(items: Sequence[BatchItem]) -> list[ItemResult]:
        return [results[i.update.provider_event_id] for i in items]
    return respond


def problem(error: WebhookError) -> ItemResult:
    return ItemResult.of(error)


@asynccontextmanager
async def open_forwarder(api: FakeBatchApi, settings: Settings = SETTINGS,
                         config: rules.BreakerConfig = BREAKER
                         ) -> AsyncIterator[tuple[UpdateForwarder, CircuitBreakerActor]]:
    breaker = CircuitBreakerActor(config, name="forwarder-test")
    forwarder = UpdateForwarder(api, breaker, settings, rng=random.Random(7))
    with trio.fail_after(3600):  # on the autojump clock: a hang fails at once
        async with trio.open_nursery() as nursery:
            await nursery.start(breaker.run)
            await nursery.start(forwarder.run)
            yield forwarder, breaker
            nursery.cancel_scope.cancel()


def update(event: str, user: str = "u1"):  # noqa: ANN201 - an OrderUpdate
    return order_update(f"o-{user}", user, "paid", at(1), provider_event_id=event)


async def forward_all(forwarder: UpdateForwarder, events: list[str]) -> dict[str, Outcome | Exception]:
    """Forward each event from its own task (concurrent webhooks); each one's outcome or error."""
    answers: dict[str, Outcome | Exception] = {}

    async def one(event: str) -> None:
        try:
            answers[event] = await forwarder.forward(update(event))
        except WebhookError as error:
            answers[event] = error

    async with trio.open_nursery() as nursery:
        for event in events:
            nursery.start_soon(one, event)
    return answers


async def test_a_lone_webhook_goes_at_once(autojump_clock: trio.abc.Clock) -> None:
    api = FakeBatchApi([])
    async with open_forwarder(api) as (forwarder, _):
        await trio.sleep(5)
        assert await forwarder.forward(update("e1")) is Outcome.APPLIED
    assert api.calls == [(5.0, ["e1"])]  # no timer: sent the moment it arrived, alone


async def test_a_batch_forms_while_a_call_is_in_flight(autojump_clock: trio.abc.Clock) -> None:
    api = FakeBatchApi([applied_after(1)], then=applied_after(1))
    async with open_forwarder(api) as (forwarder, _), trio.open_nursery() as nursery:
        nursery.start_soon(forwarder.forward, update("e0"))
        await wait_all_tasks_blocked()  # its call is in flight
        answers = await forward_all(forwarder, [f"e{n}" for n in range(1, 12)])
    assert set(answers.values()) == {Outcome.APPLIED} and len(answers) == 11
    assert [len(events) for _, events in api.calls] == [1, 8, 3]  # the first alone; then up to API_BATCH_MAX
    assert [when for when, _ in api.calls] == [0, 1, 2]


async def test_each_webhook_gets_its_own_outcome(autojump_clock: trio.abc.Clock) -> None:
    results = {"applied": ItemResult(200, "applied"), "stale": ItemResult(200, "stale"),
               "dup": ItemResult(409, "", "urn:payment-webhooks:problem:conflict"),
               "missing": problem(NotFound("order o-u1 not found")),
               "invalid": problem(InvalidTransition("cannot")), "mismatch": problem(UserMismatch("not yours")),
               "bad": problem(InvalidInput("currency")), "odd": ItemResult(418, "", "about:blank")}
    api = FakeBatchApi([applied_after(1)], then=by_event(results))
    async with open_forwarder(api) as (forwarder, breaker):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(forwarder.forward, update("first"))
            await wait_all_tasks_blocked()
            answers = await forward_all(forwarder, list(results))
        await wait_all_tasks_blocked()
        assert breaker.statistics().consecutive_failures == 0  # answers about events: the api is up
    assert len(api.calls) == 2 and sorted(api.calls[1][1]) == sorted(results)  # one batch call for all
    assert answers["applied"] is Outcome.APPLIED and answers["stale"] is Outcome.STALE
    assert answers["dup"] is Outcome.DUPLICATE
    for event, error in (("missing", NotFound), ("invalid", InvalidTransition), ("mismatch", UserMismatch),
                         ("bad", InvalidInput), ("odd", BadGateway)):
        assert type(answers[event]) is error, event
    assert str(answers["mismatch"]) == "not yours"


async def test_items_the_api_answered_5xx_are_retried_alone(autojump_clock: trio.abc.Clock) -> None:
    down = problem(DatabaseUnavailable("shard 1 is down"))
    api = FakeBatchApi([by_event({"a": ItemResult(200, "applied"), "b": down, "c": down}),
                        by_event({"b": ItemResult(200, "applied"), "c": ItemResult(409, "")})])
    # threshold 1: had the partly answered attempt counted as a failure, the retry would be refused (503)
    async with open_forwarder(api, config=rules.BreakerConfig(1, 30)) as (forwarder, breaker):
        answers = await forward_all(forwarder, ["a", "b", "c"])
        await wait_all_tasks_blocked()
        assert breaker.statistics().consecutive_failures == 0  # partly answered: the api is up
    assert answers == {"a": Outcome.APPLIED, "b": Outcome.APPLIED, "c": Outcome.DUPLICATE}
    assert [sorted(events) for _, events in api.calls] == [["a", "b", "c"], ["b", "c"]]


async def test_a_batch_retried_after_a_lost_answer_gets_duplicates_and_applies_nothing_twice(
        autojump_clock: trio.abc.Clock) -> None:
    """The api applies the batch, then the answer is lost (a timeout); the retry finds every event stored."""
    stored: list[str] = []

    async def apply_then_lose(items: Sequence[BatchItem]) -> list[ItemResult]:
        stored.extend(i.update.provider_event_id for i in items)
        raise TransientFailure(BadGateway("connection reset after the request was sent"))

    async def idempotent(items: Sequence[BatchItem]) -> list[ItemResult]:
        results = []
        for event in (i.update.provider_event_id for i in items):
            results.append(ItemResult(409, "") if event in stored else ItemResult(200, "applied"))
            if event not in stored:
                stored.append(event)
        return results

    api = FakeBatchApi([applied_after(1), apply_then_lose], then=idempotent)
    async with open_forwarder(api) as (forwarder, _):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(forwarder.forward, update("first"))
            await wait_all_tasks_blocked()
            answers = await forward_all(forwarder, ["a", "b", "c"])
    assert answers == dict.fromkeys("abc", Outcome.DUPLICATE)  # 200 to the provider: 2xx either way
    assert sorted(stored) == ["a", "b", "c"]  # each applied once
    assert len(api.calls) == 3 and sorted(api.calls[1][1]) == sorted(api.calls[2][1]) == ["a", "b", "c"]


async def test_transient_failures_end_in_502_and_open_the_circuit_for_queued_webhooks(
        autojump_clock: trio.abc.Clock) -> None:
    failing = TransientFailure(BadGateway("the api answered 500"))
    api = FakeBatchApi([], then=failing)  # every call fails
    settings = SETTINGS.replace(api_retry_attempts=2)
    async with open_forwarder(api, settings, rules.BreakerConfig(3, 30)) as (forwarder, breaker):
        first = await forward_all(forwarder, ["a", "b"])
        assert all(type(answer) is BadGateway for answer in first.values())  # 502 after 2 attempts
        assert len(api.calls) == 2
        second = await forward_all(forwarder, ["c", "d", "e"])
        await wait_all_tasks_blocked()
        assert breaker.state is rules.State.OPEN
    # the third failed attempt opened the circuit; its retry was refused: 503 + Retry-After for the batch
    assert {type(answer) for answer in second.values()} == {CircuitOpen}
    assert len(api.calls) == 3


async def test_a_timed_out_batch_call_is_retried(autojump_clock: trio.abc.Clock) -> None:
    api = FakeBatchApi([applied_after(60)], then=applied_after(0))
    async with open_forwarder(api) as (forwarder, _):
        started = trio.current_time()
        assert await forwarder.forward(update("a")) is Outcome.APPLIED
        assert 10 <= trio.current_time() - started < 11  # one API_TIMEOUT, one backoff
    assert len(api.calls) == 2


async def test_a_cancelled_webhook_breaks_neither_the_batch_nor_the_others(autojump_clock: trio.abc.Clock) -> None:
    """One webhook leaves while queued (never sent), one while its batch call is in flight (left out
    of the retry); the others of the batch get their answers and the breaker keeps no permit."""

    async def fail_later(items: Sequence[BatchItem]) -> list[ItemResult]:
        await trio.sleep(1)
        raise TransientFailure(BadGateway("the api answered 500"))

    api = FakeBatchApi([applied_after(1), fail_later], then=applied_after(0))
    answers: dict[str, Outcome] = {}

    async def webhook(event: str, leaves_at: float = 0) -> None:
        with trio.move_on_at(leaves_at or float("inf")):
            answers[event] = await forwarder.forward(update(event))

    async with open_forwarder(api) as (forwarder, breaker):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(webhook, "first")
            await wait_all_tasks_blocked()  # its call is in flight until t=1
            for event, leaves_at in (("a", 0), ("queued", 0.5), ("b", 0), ("in-flight", 1.5)):
                nursery.start_soon(webhook, event, leaves_at)
        await wait_all_tasks_blocked()
        assert breaker.statistics().trials_in_flight == 0 and breaker.state is rules.State.CLOSED
    assert answers == {"first": Outcome.APPLIED, "a": Outcome.APPLIED, "b": Outcome.APPLIED}
    assert sorted(api.calls[1][1]) == ["a", "b", "in-flight"]  # "queued" had left before it was sent
    assert sorted(api.calls[2][1]) == ["a", "b"]  # the retry leaves out the one that left meanwhile


async def test_a_webhook_cancelled_at_any_await_point_leaves_the_forwarder_working(
        autojump_clock: trio.abc.Clock) -> None:
    api = FakeBatchApi([], then=applied_after(1))
    async with open_forwarder(api, SETTINGS.replace(api_calls_in_flight=2)) as (forwarder, breaker):
        for steps in range(1, 60):
            event = update(f"c{steps}")
            hit = await cancelled_after(steps, lambda: forwarder.forward(event))  # noqa: B023 - awaited at once
            assert await forwarder.forward(update(f"after{steps}")) is Outcome.APPLIED, steps
            await wait_all_tasks_blocked()
            assert breaker.statistics().trials_in_flight == 0
            if not hit:
                break
        else:
            raise AssertionError("the forward never completed")


async def test_while_the_circuit_is_open_a_webhook_is_refused_at_once(autojump_clock: trio.abc.Clock) -> None:
    """Not queued behind the calls in flight (here one hangs for the whole API_TIMEOUT): refused
    the moment it arrives, with the breaker's Retry-After; no call slot, no trial taken."""
    api = FakeBatchApi([applied_after(3600)], then=applied_after(0))
    async with open_forwarder(api, SETTINGS.replace(api_retry_attempts=1),
                              rules.BreakerConfig(1, 30)) as (forwarder, breaker), trio.open_nursery() as nursery:
        nursery.start_soon(forward_all, forwarder, ["slow"])  # holds the one call slot
        await wait_all_tasks_blocked()
        with pytest.raises(OSError):  # a failed call (threshold 1) opens the circuit
            async with breaker.permit():
                raise OSError("connection refused")
        await wait_all_tasks_blocked()
        assert breaker.state is rules.State.OPEN
        started = trio.current_time()
        answers = await forward_all(forwarder, ["refused"])
        assert trio.current_time() == started
        refused = answers["refused"]
        assert isinstance(refused, CircuitOpen) and refused.retry_after_seconds == 30
        assert not refused.api_called
        nursery.cancel_scope.cancel()
    assert [events for _, events in api.calls] == [["slow"]]


async def test_a_call_backing_off_when_the_circuit_opens_is_answered_at_once(autojump_clock: trio.abc.Clock) -> None:
    """Its own failure (threshold 1) opens the circuit: the webhook hears 503 + Retry-After at once,
    not after the retry delay (10 s here) only to be refused then; no second call is made."""
    failing = TransientFailure(BadGateway("the api answered 500"))
    api = FakeBatchApi([], then=failing)
    settings = SETTINGS.replace(api_retry_base_delay_seconds=10)
    async with open_forwarder(api, settings, rules.BreakerConfig(1, 30)) as (forwarder, breaker):
        started = trio.current_time()
        answers = await forward_all(forwarder, ["a", "b"])
        assert trio.current_time() == started
        assert breaker.state is rules.State.OPEN
    assert {type(answer) for answer in answers.values()} == {CircuitOpen}
    assert all(isinstance(a, CircuitOpen) and a.api_called for a in answers.values())  # it had been tried
    assert len(api.calls) == 1


async def test_a_call_backing_off_is_answered_when_other_calls_open_the_circuit(
        autojump_clock: trio.abc.Clock) -> None:
    """One call fails and backs off (10 s); two more fail meanwhile and open the circuit
    (threshold 3): the first call's webhook is answered then, 503, not at the end of its delay."""
    failing = TransientFailure(BadGateway("the api answered 500"))

    async def fail_after(seconds: float) -> Respond:
        async def respond(items: Sequence[BatchItem]) -> list[ItemResult]:
            await trio.sleep(seconds)
            raise failing
        return respond

    api = FakeBatchApi([failing, await fail_after(2), await fail_after(2)], then=applied_after(0))
    settings = SETTINGS.replace(api_retry_base_delay_seconds=10, api_retry_attempts=2, api_calls_in_flight=2)
    answered_at: dict[str, float] = {}

    async def webhook(event: str) -> None:
        try:
            await forwarder.forward(update(event))
        except CircuitOpen:
            answered_at[event] = trio.current_time()

    async with open_forwarder(api, settings, rules.BreakerConfig(3, 30)) as (forwarder, breaker):
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(webhook, "first")
            await wait_all_tasks_blocked()  # failed at once, backing off until started + 7.5 at least
            nursery.start_soon(webhook, "second")
            await wait_all_tasks_blocked()
            nursery.start_soon(webhook, "third")
        assert breaker.state is rules.State.OPEN
    assert set(answered_at) == {"first", "second", "third"}
    assert answered_at["first"] - started == pytest.approx(2, abs=0.01)


class _NoJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


def _fails_after(seconds: float) -> Respond:
    async def respond(items: Sequence[BatchItem]) -> list[ItemResult]:
        await trio.sleep(seconds)
        raise TransientFailure(BadGateway("the api answered 500"))
    return respond


async def test_a_retry_due_as_a_half_open_trial_succeeds_is_not_refused_by_a_stale_read(
        autojump_clock: trio.abc.Clock) -> None:
    """Reset 1 s; "a" fails at t=2 and backs off 3 s; "c" is the half-open trial and succeeds at
    t=5.0, the very moment "a" retries: its success report may still be in the actor's inbox, so
    "a" must ask the actor (in order), not read a half-open state that is one message behind."""
    for _ in range(20):
        failing = TransientFailure(BadGateway("the api answered 500"))
        api = FakeBatchApi([_fails_after(2), failing, applied_after(3.5)], then=applied_after(0))
        settings = SETTINGS.replace(api_retry_base_delay_seconds=3, api_calls_in_flight=2, api_timeout_seconds=10)
        breaker = CircuitBreakerActor(rules.BreakerConfig(1, 1), name="stale-read")
        forwarder = UpdateForwarder(api, breaker, settings, rng=_NoJitter())
        answers: dict[str, Outcome | Exception] = {}

        async def one(event: str) -> None:
            try:
                answers[event] = await forwarder.forward(update(event))  # noqa: B023 - awaited at once
            except WebhookError as error:
                answers[event] = error  # noqa: B023

        async with trio.open_nursery() as nursery:
            await nursery.start(breaker.run)
            await nursery.start(forwarder.run)
            async with trio.open_nursery() as webhooks:
                webhooks.start_soon(one, "a")
                await wait_all_tasks_blocked()
                webhooks.start_soon(one, "b")  # fails at once: the circuit opens (threshold 1)
                await trio.sleep(1.5)
                webhooks.start_soon(one, "c")  # the half-open trial
            nursery.cancel_scope.cancel()
        assert isinstance(answers["b"], CircuitOpen) and answers["c"] is Outcome.APPLIED
        assert answers["a"] is Outcome.APPLIED, answers


async def test_a_backoff_that_outlasts_the_reset_timeout_is_slept_and_its_retry_is_the_trial(
        autojump_clock: trio.abc.Clock) -> None:
    failing = TransientFailure(BadGateway("the api answered 500"))
    api = FakeBatchApi([failing], then=applied_after(0))
    async with open_forwarder(api, SETTINGS.replace(api_retry_base_delay_seconds=5),
                              rules.BreakerConfig(1, 2)) as (forwarder, _):
        answers = await forward_all(forwarder, ["a"])
    assert answers == {"a": Outcome.APPLIED}
    assert len(api.calls) == 2 and api.calls[1][0] >= 5 * 0.75


async def test_a_circuit_open_past_its_reset_timeout_does_not_skip_the_backoff(
        autojump_clock: trio.abc.Clock) -> None:
    """Open since t=0 (reset 5 s), nobody asked since: a call from before the opening times out at
    t=10 and the actor still says open, but the trial is long due: its retry sleeps its backoff."""
    async def hang(items: Sequence[BatchItem]) -> list[ItemResult]:
        await trio.sleep_forever()
        raise AssertionError

    failing = TransientFailure(BadGateway("the api answered 500"))
    api = FakeBatchApi([hang, failing], then=applied_after(0))
    settings = SETTINGS.replace(api_retry_base_delay_seconds=3, api_calls_in_flight=2, api_timeout_seconds=10)
    async with open_forwarder(api, settings, rules.BreakerConfig(1, 5)) as (forwarder, _):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(forward_all, forwarder, ["slow"])
            await wait_all_tasks_blocked()
            nursery.start_soon(forward_all, forwarder, ["fail"])  # fails at once: open at t=0
    times = [at for at, _ in api.calls]
    assert times[2] - 10 >= 3 * 0.75, api.calls  # the timed-out call's retry, after its backoff


async def test_a_zero_reset_timeout_does_not_turn_retries_into_a_burst(autojump_clock: trio.abc.Clock) -> None:
    api = FakeBatchApi([], then=_fails_after(0))
    settings = SETTINGS.replace(api_retry_attempts=5, api_retry_base_delay_seconds=0.5)
    async with open_forwarder(api, settings, rules.BreakerConfig(1, 0)) as (forwarder, _):
        await forward_all(forwarder, ["x"])
    times = [at for at, _ in api.calls]
    assert len(times) == 5 and all(b - a >= 0.5 * 0.75 for a, b in zip(times, times[1:], strict=False)), times


async def test_a_circuit_that_opens_again_during_a_backoff_answers_the_call_then(
        autojump_clock: trio.abc.Clock) -> None:
    """Threshold 1, reset 5 s, backoff 10 s: "a" fails at t=0 and the trial is due before its
    delay ends, so it sleeps on; "c" is the trial at t=6 and fails, the next trial is due at 11,
    after a's deadline: a's retry could only be refused, so "a" hears its 503 at t=6, not 10."""
    api = FakeBatchApi([_fails_after(0), _fails_after(0)], then=applied_after(0))
    settings = SETTINGS.replace(api_retry_base_delay_seconds=10, api_retry_max_delay_seconds=60,
                                api_calls_in_flight=2)
    answered: dict[str, tuple[float, Outcome | Exception]] = {}
    async with open_forwarder(api, settings, rules.BreakerConfig(1, 5)) as (forwarder, _):
        async def one(event: str) -> None:
            try:
                answered[event] = (trio.current_time(), await forwarder.forward(update(event)))
            except WebhookError as error:
                answered[event] = (trio.current_time(), error)

        async with trio.open_nursery() as webhooks:
            webhooks.start_soon(one, "a")
            await trio.sleep(6)
            webhooks.start_soon(one, "c")
    at, answer = answered["a"]
    assert isinstance(answer, CircuitOpen) and answer.api_called and at == pytest.approx(6)


async def test_a_further_call_waits_for_the_one_under_way_so_the_webhooks_meanwhile_make_one_batch(
        autojump_clock: trio.abc.Clock) -> None:
    """Two call slots, a call taking 50 ms: the webhooks arriving meanwhile go together when it
    ends (one call of three), not one by one in the free slot."""
    api = FakeBatchApi([], then=applied_after(0.05))
    settings = SETTINGS.replace(api_calls_in_flight=2, api_next_call_after_seconds=0.1)
    async with open_forwarder(api, settings) as (forwarder, _), trio.open_nursery() as nursery:
        nursery.start_soon(forward_all, forwarder, ["a"])
        for event in ("b", "c", "d"):
            await trio.sleep(0.01)
            nursery.start_soon(forward_all, forwarder, [event])
    assert [(round(at, 3), events) for at, events in api.calls] == [(0.0, ["a"]), (0.05, ["b", "c", "d"])]


async def test_a_slow_call_holds_the_next_back_only_for_api_next_call_after(autojump_clock: trio.abc.Clock) -> None:
    """The call under way hangs: the next starts 0.1 s after it began, in the second slot, and its
    webhooks are answered long before the hanging one."""
    api = FakeBatchApi([applied_after(5)], then=applied_after(0))
    settings = SETTINGS.replace(api_calls_in_flight=2, api_next_call_after_seconds=0.1)
    async with open_forwarder(api, settings) as (forwarder, _), trio.open_nursery() as nursery:
        nursery.start_soon(forward_all, forwarder, ["slow"])
        await trio.sleep(0.02)
        answers = await forward_all(forwarder, ["b", "c"])
        assert answers == {"b": Outcome.APPLIED, "c": Outcome.APPLIED}
        assert trio.current_time() == pytest.approx(0.1)
    assert [(round(at, 3), sorted(events)) for at, events in api.calls] == [(0.0, ["slow"]), (0.1, ["b", "c"])]


async def test_with_api_next_call_after_zero_a_free_slot_is_used_at_once(autojump_clock: trio.abc.Clock) -> None:
    api = FakeBatchApi([], then=applied_after(0.05))
    settings = SETTINGS.replace(api_calls_in_flight=2, api_next_call_after_seconds=0)
    async with open_forwarder(api, settings) as (forwarder, _), trio.open_nursery() as nursery:
        nursery.start_soon(forward_all, forwarder, ["a"])
        await trio.sleep(0.01)
        nursery.start_soon(forward_all, forwarder, ["b"])
    assert [(round(at, 3), events) for at, events in api.calls] == [(0.0, ["a"]), (0.01, ["b"])]
