"""The circuit-breaker actor: one trio task owns the breaker; callers talk to it over channels.

``acquire()`` asks "may I call?" and waits for the answer; ``record_nowait()``
reports how the call went (synchronously, so it works from a cancelled caller's
``finally`` — a trial call that is never reported would hold the breaker half-open).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import trio

from ingest import circuit_breaker as rules
from ingest.metrics import BREAKER_STATE, BREAKER_TRANSITIONS
from shared.errors import CircuitOpen


@dataclass(frozen=True)
class _Ask:
    reply: trio.MemorySendChannel[rules.Decision]


@dataclass(frozen=True)
class _Report:
    success: bool


class CircuitBreakerActor:
    def __init__(self, config: rules.BreakerConfig, name: str = "api",
                 clock: Callable[[], float] = trio.current_time) -> None:
        self._breaker = rules.Breaker(config)
        self._name = name
        self._clock = clock
        self._send, self._receive = trio.open_memory_channel[_Ask | _Report](math.inf)
        self._publish(self._breaker.state)

    @property
    def state(self) -> rules.State:
        return self._breaker.state

    async def acquire(self) -> None:
        """Return if the call may go ahead; raise ``CircuitOpen`` (with Retry-After) if not."""
        reply_send, reply_receive = trio.open_memory_channel[rules.Decision](1)
        async with reply_receive:
            self._send.send_nowait(_Ask(reply_send))
            decision = await reply_receive.receive()
        if not decision.allowed:
            raise CircuitOpen("the api is failing; not calling it for now",
                              retry_after_seconds=max(1, math.ceil(decision.retry_after_seconds)))

    def record_nowait(self, success: bool) -> None:
        self._send.send_nowait(_Report(success))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with self._receive:
            async for message in self._receive:
                before = self._breaker.state
                if isinstance(message, _Ask):
                    self._breaker, decision = rules.request(self._breaker, self._clock())
                    with message.reply:
                        try:
                            message.reply.send_nowait(decision)
                        except trio.BrokenResourceError:  # the caller is gone: release its trial slot
                            if decision.allowed:
                                self._breaker = rules.failed(self._breaker, self._clock())
                elif message.success:
                    self._breaker = rules.succeeded(self._breaker, self._clock())
                else:
                    self._breaker = rules.failed(self._breaker, self._clock())
                if self._breaker.state is not before:
                    BREAKER_TRANSITIONS.labels(self._name, before.value, self._breaker.state.value).inc()
                    self._publish(self._breaker.state)

    def _publish(self, state: rules.State) -> None:
        for candidate in rules.State:
            BREAKER_STATE.labels(self._name, candidate.value).set(1 if candidate is state else 0)
