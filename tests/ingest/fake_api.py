"""An in-memory ApiClient for the breaker and retry tests, and a cancellation injector.

``FakeApi`` answers from a script, one entry per call, then ``then`` for every later
call. An entry is an ``Outcome``, an exception to raise, ``"hang"``, ``"slow"`` (answers
applied after a second, so calls overlap) or an async function of no arguments.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

import trio

from shared.domain import Outcome
from shared.errors import BadGateway
from shared.retry_policy import TransientFailure

Step = Outcome | Exception | Literal["hang", "slow"] | Callable[[], Awaitable[Outcome]]


class FakeApi:
    def __init__(self, script: list[Step], then: Step = Outcome.APPLIED) -> None:
        self.script = list(script)
        self.then = then
        self.calls: list[float] = []

    async def _next(self) -> Outcome:
        self.calls.append(trio.current_time())
        step = self.script.pop(0) if self.script else self.then
        if isinstance(step, Exception):
            raise step
        if step == "hang":
            await trio.sleep_forever()
        if step == "slow":
            await trio.sleep(1)
            return Outcome.APPLIED
        if callable(step):
            return await step()
        return step

    async def send_order_update(self, update: object) -> Outcome:
        return await self._next()

    async def send_dispute_update(self, update: object) -> Outcome:
        return await self._next()

    async def aclose(self) -> None:
        pass


def transient() -> TransientFailure:
    return TransientFailure(BadGateway("api answered 500"))


def after(seconds: float, result: Outcome | Exception) -> Callable[[], Awaitable[Outcome]]:
    """A script step that answers ``result`` after ``seconds``."""

    async def step() -> Outcome:
        await trio.sleep(seconds)
        if isinstance(result, Exception):
            raise result
        return result

    return step


class CancelAfterSteps(trio.abc.Instrument):
    """Cancels ``scope`` right after the ``steps``-th task step from now: at one await point.

    Stepping ``steps`` through 1, 2, 3, … injects a cancellation after every step of
    every running task in turn (the caller's, and the actor's replies to it), so a test
    can check an invariant for a cancellation at each await point of a call.
    """

    def __init__(self, scope: trio.CancelScope, steps: int) -> None:
        self.scope = scope
        self.steps = steps

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps -= 1
        if self.steps == 0:
            self.scope.cancel()


async def cancelled_after(steps: int, call: Callable[[], Awaitable[object]]) -> bool:
    """Run ``call`` and cancel it after ``steps`` task steps; whether the cancellation hit it."""
    return await _cancelled_by(lambda scope: CancelAfterSteps(scope, steps), call)


async def _cancelled_by(injector_for: Callable[[trio.CancelScope], trio.abc.Instrument],
                        call: Callable[[], Awaitable[object]]) -> bool:
    with trio.CancelScope() as scope:
        injector = injector_for(scope)
        trio.lowlevel.add_instrument(injector)
        try:
            await call()
        finally:
            trio.lowlevel.remove_instrument(injector)
    return scope.cancelled_caught


class CancelBeforeStepOf(trio.abc.Instrument):
    """Cancels ``scope`` just before the next step of a task whose name ends with ``task_name``."""

    def __init__(self, scope: trio.CancelScope, task_name: str) -> None:
        self.scope = scope
        self.task_name = task_name

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith(self.task_name):
            self.scope.cancel()


async def cancelled_as(task_name: str, call: Callable[[], Awaitable[object]]) -> bool:
    """Run ``call``, cancelled as the task ``task_name`` next runs (say, while the actor answers it)."""
    return await _cancelled_by(lambda scope: CancelBeforeStepOf(scope, task_name), call)
