"""The circuit-breaker actor: one trio task owns the breaker; callers talk to it over channels.

    async with breaker.permit(answers=(WebhookError,)):
        await call_the_api()

``permit()`` asks the actor "may I call?" and waits for its answer: a ``Permit``
(generation + trial flag), or ``CircuitOpen`` with Retry-After. Leaving the block
reports how the call went, by what left it (``result_of``):

- nothing: a success;
- an exception of the ``answers`` types: a success too — the other side answered
  (for the api client: 404, 409, 422, 400 — answers about the event itself);
- any other ``Exception``: a failure (transient failures, timeouts, surprises);
- ``trio.Cancelled`` (alone or in a group), or any other ``BaseException``: the
  permit is released, counting neither way — a cancelled caller says nothing about
  the api.

A permit is released by whichever side holds it last. A caller cancelled before the
answer reached it takes the answer out of its reply channel if it is there; otherwise
it closes the channel, and the actor, failing to deliver, releases the permit itself.
Reports go out with ``send_nowait`` (no checkpoint, so they work from a cancelled
caller), which is why the inbox is unbounded: each caller has at most one ask or one
report in it, so callers bound it. The rules live in ``circuit_breaker``; this file
only moves messages and publishes the state in metrics.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from ingest import circuit_breaker as rules
from ingest.metrics import BREAKER_STATE, BREAKER_TRANSITIONS
from shared.errors import CircuitOpen

MAX_RETRY_AFTER_SECONDS = 86_400.0  # whatever the settings say, a caller is not told to wait over a day


@dataclass(frozen=True)
class _Ask:
    reply: trio.MemorySendChannel[rules.Decision]


@dataclass(frozen=True)
class _Report:
    permit: rules.Permit
    result: rules.Result


@dataclass(frozen=True)
class BreakerStatistics:
    state: rules.State
    generation: int
    consecutive_failures: int
    trials_in_flight: int
    inbox_depth: int


def result_of(exc: BaseException | None, answers: tuple[type[Exception], ...] = ()) -> rules.Result:
    """What leaving a permit's block with ``exc`` reports (see the module docstring)."""
    if exc is None or isinstance(exc, answers):
        return rules.Result.SUCCESS
    if isinstance(exc, Exception):
        return rules.Result.FAILURE
    return rules.Result.RELEASED  # trio.Cancelled, a group holding one, KeyboardInterrupt…


class CircuitBreakerActor:
    def __init__(self, config: rules.BreakerConfig, name: str = "api",
                 clock: Callable[[], float] = trio.current_time, rng: random.Random | None = None) -> None:
        self._breaker = rules.Breaker(config)
        self._name = name
        self._clock = clock
        self._rng = rng or random.Random()
        self._send, self._inbox = trio.open_memory_channel[_Ask | _Report](math.inf)
        self._changed = trio.Event()  # set (and replaced) at every state change
        self._publish(self._breaker.state)

    @property
    def state(self) -> rules.State:
        return self._breaker.state

    def statistics(self) -> BreakerStatistics:
        b = self._breaker
        return BreakerStatistics(b.state, b.generation, b.failures, b.trials,
                                 self._send.statistics().current_buffer_used)

    def refusal(self) -> CircuitOpen | None:
        """``CircuitOpen`` if a call asked for now would be refused, else None; asks nothing.

        For callers that would otherwise queue behind calls in flight (ingest's forwarder) only to
        be refused: while the circuit is open they answer 503 at once. It reads the actor's last
        state (an immutable value) and changes nothing; ``permit`` stays the one authority."""
        retry_after = rules.refusal(self._breaker, self._clock())
        return None if retry_after is None else self._circuit_open(retry_after)

    def refuses_for(self, seconds: float) -> bool:
        """Whether the circuit is open and its trial is not due within ``seconds``: every call asked
        for meanwhile would be refused. Says nothing while half-open (see ``refusal_while_open``)."""
        trial_at = rules.trial_at(self._breaker)
        return trial_at is not None and trial_at > self._clock() + seconds

    def refusal_while_open(self) -> CircuitOpen | None:
        """``CircuitOpen`` if the circuit is open and its trial not due yet; else None.

        Unlike ``refusal`` it says nothing while half-open: a trial slot busy now may already be free
        by a report still in the inbox, which only ``permit`` answers in order. For a retry that
        would wait for a call slot only to be refused."""
        trial_at = rules.trial_at(self._breaker)
        if trial_at is None or not self.refuses_for(0.0):
            return None
        return self._circuit_open(trial_at - self._clock())

    async def changed(self) -> None:
        """Return at the actor's next state change.

        A call backing off between attempts re-reads ``refuses_for`` at each one: the circuit may
        open, or a failed trial open it again, while it waits. (The state read is the actor's
        last: open past its reset timeout stays open until the next ask.)"""
        await self._changed.wait()

    @asynccontextmanager
    async def permit(self, *, answers: tuple[type[Exception], ...] = ()) -> AsyncIterator[rules.Permit]:
        """Hold a permit for one call; raise ``CircuitOpen`` (with Retry-After) if refused."""
        decision = await self._ask()
        if decision.permit is None:
            raise self._circuit_open(decision.retry_after_seconds)
        try:
            yield decision.permit
        except BaseException as exc:
            self._report(decision.permit, result_of(exc, answers))
            raise
        self._report(decision.permit, rules.Result.SUCCESS)

    async def _ask(self) -> rules.Decision:
        reply_send, reply_receive = trio.open_memory_channel[rules.Decision](1)
        with reply_receive:
            try:
                self._send.send_nowait(_Ask(reply_send))
            except trio.BrokenResourceError:
                raise CircuitOpen("the circuit breaker has stopped") from None
            try:
                return await reply_receive.receive()
            except BaseException:
                self._release_undelivered(reply_receive)
                raise

    def _release_undelivered(self, reply: trio.MemoryReceiveChannel[rules.Decision]) -> None:
        try:
            decision = reply.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return  # not answered yet: the actor will find the channel closed and release it
        if decision.permit is not None:
            self._report(decision.permit, rules.Result.RELEASED)

    def _report(self, permit: rules.Permit, result: rules.Result) -> None:
        try:
            self._send.send_nowait(_Report(permit, result))
        except trio.BrokenResourceError:
            pass  # the actor has stopped: no state left to keep

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with self._inbox:
            async for message in self._inbox:
                before = self._breaker.state
                if isinstance(message, _Ask):
                    self._answer(message)
                else:
                    self._breaker = rules.report(self._breaker, message.permit, message.result, self._clock())
                if self._breaker.state is not before:
                    BREAKER_TRANSITIONS.labels(self._name, before.value, self._breaker.state.value).inc()
                    self._publish(self._breaker.state)
                    self._signal()

    def _answer(self, ask: _Ask) -> None:
        self._breaker, decision = rules.request(self._breaker, self._clock())
        with ask.reply:
            try:
                ask.reply.send_nowait(decision)
            except trio.BrokenResourceError:  # the caller was cancelled before the answer
                if decision.permit is not None:
                    self._breaker = rules.report(self._breaker, decision.permit, rules.Result.RELEASED,
                                                 self._clock())

    def _circuit_open(self, retry_after_seconds: float) -> CircuitOpen:
        """The refusal, its Retry-After spread over ``retry_after_spread_seconds`` (see the config)."""
        # both bounded: uniform(0, inf) may be NaN, and the reset timeout may be huge too
        spread = self._rng.uniform(0, min(self._breaker.config.retry_after_spread_seconds, MAX_RETRY_AFTER_SECONDS))
        seconds = min(retry_after_seconds + spread, MAX_RETRY_AFTER_SECONDS)
        return CircuitOpen("the api is failing; not calling it for now", retry_after_seconds=max(1, math.ceil(seconds)))

    def _signal(self) -> None:
        self._changed.set()  # wakes whoever waits on this one; later waiters wait for the next change
        self._changed = trio.Event()

    def _publish(self, state: rules.State) -> None:
        for candidate in rules.State:
            BREAKER_STATE.labels(self._name, candidate.value).set(1 if candidate is state else 0)

