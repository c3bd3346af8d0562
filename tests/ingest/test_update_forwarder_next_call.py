"""``API_NEXT_CALL_AFTER``: a further call waits for the attempt under way to end, at most that long
from the oldest attempt's start — never longer because retries start meanwhile, never while a full
batch is queued — and the wait leaves no trace when webhooks are cancelled at any await."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from ingest import circuit_breaker as rules
from ingest.breaker_actor import CircuitBreakerActor
from ingest.service import sync_deadline_seconds
from ingest.update_forwarder import UpdateForwarder
from shared.domain import Outcome
from shared.errors import BadGateway, WebhookError
from shared.retry_policy import TransientFailure
from shared.settings import ConfigError, Settings
from shared.update_batch import BatchItem, ItemResult
from tests.ingest.fake_api import cancelled_after
from tests.ingest.test_update_forwarder import (
    SETTINGS,
    FakeBatchApi,
    applied_after,
    forward_all,
    open_forwarder,
    update,
)

AFTER = 0.1


class _NoJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


class ByEventApi:
    """Each call is answered by the script of its first item's event: a list of (seconds, fails)
    per attempt (the last repeats). Records (time, events) per call."""

    def __init__(self, scripts: dict[str, list[tuple[float, bool]]]) -> None:
        self.scripts = scripts
        self.seen: dict[str, int] = {}
        self.calls: list[tuple[float, list[str]]] = []

    async def send_updates(self, items: Sequence[BatchItem]) -> list[ItemResult]:
        events = [i.update.provider_event_id for i in items]
        self.calls.append((trio.current_time(), events))
        script = self.scripts.get(events[0], [(0.0, False)])
        n = self.seen[events[0]] = self.seen.get(events[0], 0) + 1
        seconds, fails = script[min(n, len(script)) - 1]
        await trio.sleep(seconds)
        if fails:
            raise TransientFailure(BadGateway("the api answered 500"))
        return [ItemResult(200, "applied")] * len(items)

    async def aclose(self) -> None:
        pass

    def started(self, event: str) -> float:
        return next(at for at, events in self.calls if event in events)


async def _run(api: ByEventApi, settings: Settings, arrivals: list[tuple[float, str]]
               ) -> tuple[float, dict[str, object]]:
    """Run the arrivals (seconds from now, event); the start time and every webhook's answer."""
    breaker = CircuitBreakerActor(rules.BreakerConfig(1000, 30), name="review")
    forwarder = UpdateForwarder(api, breaker, settings, rng=_NoJitter())
    answers: dict[str, object] = {}

    async def one(event: str) -> None:
        try:
            answers[event] = await forwarder.forward(update(event))
        except WebhookError as error:
            answers[event] = error

    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            await nursery.start(breaker.run)
            await nursery.start(forwarder.run)
            async with trio.open_nursery() as webhooks:
                start = trio.current_time()
                for at, event in arrivals:
                    await trio.sleep_until(start + at)
                    webhooks.start_soon(one, event)
            assert not forwarder._under_way  # noqa: SLF001 - no stale entry
            nursery.cancel_scope.cancel()
    return start, answers


# ---------------------------------------------------------------- REGRESSION 1 (high)

async def test_retries_of_other_calls_keep_pushing_a_new_call_back_past_api_next_call_after(
        autojump_clock: trio.abc.Clock) -> None:
    """Three slots. "x" and "y" keep failing (80 and 75 ms attempts, 13 ms base backoff,
    5 attempts), their retries overlap. "w" arrives at 0.09 with a slot free. Before 2a3d4fd its call started at
    once; the promise now is "no longer than API_NEXT_CALL_AFTER from the start of the oldest attempt
    under way" (so at most 0.1 s later). But ``_next_call_due`` loops until ``_under_way`` is EMPTY and
    re-takes ``min()`` of the attempts under way after each end: every retry that starts meanwhile is
    a fresh, younger attempt and moves the deadline on. "w" waits for the whole retry storm."""
    api = ByEventApi({"x": [(0.08, True)], "y": [(0.075, True)]})
    settings = SETTINGS.replace(api_calls_in_flight=3, api_next_call_after_seconds=AFTER, api_retry_attempts=5,
                                api_retry_base_delay_seconds=0.013, api_timeout_seconds=10)
    start, answers = await _run(api, settings, [(0.0, "x"), (0.05, "y"), (0.09, "w")])
    assert answers["w"] is Outcome.APPLIED
    waited = api.started("w") - start - 0.09  # 0.381 s when each retry restarted the wait
    assert waited <= AFTER + 1e-9, f"w waited {waited:.3f}s for a free slot; calls: {api.calls}"


# ---------------------------------------------------------------- REGRESSION 2 (high, default config)

async def test_with_two_slots_a_retry_queued_for_the_slot_pushes_the_waiting_call_back_again(
        autojump_clock: trio.abc.Clock) -> None:
    """Default API_CALLS_IN_FLIGHT=2. The loop holds the second slot idle while it waits.
    When the attempt under way ends, ``finally`` sets ``_attempt_ended`` then releases the slot to a
    retry queued on the semaphore: if that retry's task runs before the loop (trio picks the order at
    random, 50 %), it registers in ``_under_way`` and the loop waits for it too, up to 0.1 s more; and
    again for the next queued retry. "w" arrives with a free slot, so before the change it went at
    once; here it waits ≥ 0.18 s in about half the runs (more in a quarter, ...)."""
    waits = []
    for _ in range(20):
        failing = [(0.09, True), (0.09, True), (0.0, False)]
        api = ByEventApi({"c": [(0.0, True), *failing], "x": failing})
        settings = SETTINGS.replace(api_calls_in_flight=2, api_next_call_after_seconds=AFTER,
                                    api_retry_attempts=4, api_retry_base_delay_seconds=0.03)
        start, answers = await _run(api, settings, [(0.0, "c"), (0.001, "x"), (0.002, "w")])
        assert answers["w"] is Outcome.APPLIED
        waits.append(round(api.started("w") - start - 0.002, 3))
    assert max(waits) <= AFTER + 1e-9, f"w's waits over 20 runs: {sorted(waits)}"


# ---------------------------------------------------------------- REGRESSION 3 (medium, throughput)

async def test_a_full_batch_queued_does_not_wait_for_the_call_under_way(autojump_clock: trio.abc.Clock) -> None:
    """Throughput at saturation. API_BATCH_MAX=8, two slots, 50 ms calls; 16 webhooks
    queue while "a" is under way. The wait exists so that a bigger batch forms, but 8 are already
    queued: nothing can be gained, and the second slot stays idle. Before: a full batch at once in the
    free slot (all answered by 0.1); now the full batches go one after the other (0.05, 0.1 → 0.15)."""
    api = FakeBatchApi([], then=applied_after(0.05))
    settings = SETTINGS.replace(api_calls_in_flight=2, api_next_call_after_seconds=AFTER)
    async with open_forwarder(api, settings) as (forwarder, _), trio.open_nursery() as nursery:
        nursery.start_soon(forward_all, forwarder, ["a"])
        await wait_all_tasks_blocked()
        await forward_all(forwarder, [f"e{n}" for n in range(16)])
        done = trio.current_time()
    assert [len(events) for _, events in api.calls] == [1, 8, 8]
    assert done == pytest.approx(0.1), f"16 webhooks answered at {done}; calls: {[at for at, _ in api.calls]}"


# ---------------------------------------------------------------- low: settings

def test_api_next_call_after_is_bounded_by_the_settings() -> None:
    """A 400-digit value would parse to inf: a hanging call would hold every new call back until
    API_TIMEOUT and the breaker see one call at a time. Refused at start, like anything over 10 s."""
    assert Settings.from_environ({"API_NEXT_CALL_AFTER": "0"}).api_next_call_after_seconds == 0
    for raw in ("9" * 400, "1" * 400 + "ms", "11s"):
        with pytest.raises(ConfigError):
            Settings.from_environ({"API_NEXT_CALL_AFTER": raw})


async def test_an_infinite_api_next_call_after_holds_webhooks_for_a_whole_api_timeout(
        autojump_clock: trio.abc.Clock) -> None:
    """Even a wait the settings refuse (inf) is never a hang of its own: the hanging call's
    API_TIMEOUT (10 s) bounds it — "b" is answered at 10 s."""
    api = FakeBatchApi([applied_after(3600)], then=applied_after(0))
    settings = SETTINGS.replace(api_calls_in_flight=2, api_next_call_after_seconds=float("inf"))
    async with open_forwarder(api, settings) as (forwarder, _), trio.open_nursery() as nursery:
        nursery.start_soon(forward_all, forwarder, ["slow"])
        await trio.sleep(0.02)
        assert await forward_all(forwarder, ["b"]) == {"b": Outcome.APPLIED}
        assert trio.current_time() == pytest.approx(10)
        nursery.cancel_scope.cancel()


# ---------------------------------------------------------------- held up

@pytest.mark.parametrize("slots", [1, 2, 3])
async def test_a_webhook_cancelled_at_any_await_point_while_the_loop_waits_leaves_no_trace(
        autojump_clock: trio.abc.Clock, slots: int) -> None:
    """A call is under way (1 s); a webhook is cancelled after 1, 2, 3, … task steps, so at every
    await of forward() and of the loop's wait. Afterwards: no entry left in ``_under_way``, every slot
    back, no permit kept, and the next webhook is answered."""
    api = FakeBatchApi([], then=applied_after(1))
    settings = SETTINGS.replace(api_calls_in_flight=slots, api_next_call_after_seconds=AFTER)
    async with open_forwarder(api, settings) as (forwarder, breaker), trio.open_nursery() as nursery:
        for steps in range(1, 80):
            nursery.start_soon(forward_all, forwarder, [f"busy{steps}"])
            await trio.sleep(0.01)
            event = update(f"c{steps}")
            hit = await cancelled_after(steps, lambda: forwarder.forward(event))  # noqa: B023
            assert await forwarder.forward(update(f"after{steps}")) is Outcome.APPLIED, steps
            await trio.sleep(2)
            await wait_all_tasks_blocked()
            assert not forwarder._under_way, steps  # noqa: SLF001
            assert forwarder._slots.value == slots, steps  # noqa: SLF001
            assert breaker.statistics().trials_in_flight == 0
            if not hit:
                break
        else:
            raise AssertionError("the forward never completed")


async def test_a_webhook_that_leaves_while_held_gives_an_empty_attempt_that_unregisters(
        autojump_clock: trio.abc.Clock) -> None:
    """The held webhook leaves during the wait: its call's first attempt returns early (nobody waits),
    still registered and unregistered; the slot comes back; no call is sent for it."""
    api = FakeBatchApi([applied_after(0.05)], then=applied_after(0))
    settings = SETTINGS.replace(api_calls_in_flight=2, api_next_call_after_seconds=AFTER)
    async with open_forwarder(api, settings) as (forwarder, _), trio.open_nursery() as nursery:
        nursery.start_soon(forward_all, forwarder, ["a"])
        await trio.sleep(0.01)
        with trio.move_on_after(0.01):
            await forwarder.forward(update("gone"))
        await trio.sleep(1)
        assert not forwarder._under_way and forwarder._slots.value == 2  # noqa: SLF001
    assert [events for _, events in api.calls] == [["a"]]


async def test_one_slot_never_waits_in_next_call_due(autojump_clock: trio.abc.Clock) -> None:
    """API_CALLS_IN_FLIGHT=1: the loop gets the slot only when no attempt is under way (each holds
    one), so the wait never applies and retries still get the slot: no deadlock."""
    api = FakeBatchApi([TransientFailure(BadGateway("500")), applied_after(0.05)], then=applied_after(0.05))
    settings = SETTINGS.replace(api_calls_in_flight=1, api_next_call_after_seconds=float("inf"))
    async with open_forwarder(api, settings) as (forwarder, _), trio.open_nursery() as nursery:
        nursery.start_soon(forward_all, forwarder, ["a"])
        await wait_all_tasks_blocked()
        answers = await forward_all(forwarder, ["b", "c"])
    assert answers == {"b": Outcome.APPLIED, "c": Outcome.APPLIED}


def test_a_sync_webhooks_deadline_leaves_room_for_the_next_call_wait() -> None:
    """Ingest's own deadline for a sync webhook covers every attempt, backoff and mailbox wait of a
    call; the next-call wait comes on top of them, whole."""
    base = Settings.from_environ({"API_NEXT_CALL_AFTER": "0"})
    assert sync_deadline_seconds(base.replace(api_next_call_after_seconds=10)) == sync_deadline_seconds(base) + 10
