"""The forwarder actor: concurrent webhooks' updates go to the api together, each gets its own answer.

In the sync modes every webhook used to cost a whole HTTP (or gRPC) exchange between ingest
and the api — in Python, on both sides — although the api's writer batches the database work
anyway. Here webhooks put their update and a one-shot reply channel into the actor's mailbox;
the actor sends whatever has queued (up to ``API_BATCH_MAX``) as ONE call and hands each webhook
its own outcome, mapped exactly as a single call's answer was (202 applied or stale, 200
duplicate, 404, 422, 502/504 after retries, 503 while the circuit is open).

Batching is natural, never timed: a lone webhook goes at once, and a batch forms only while
calls are in flight. A further call (up to ``API_CALLS_IN_FLIGHT`` attempts under way) waits for
the one under way to end, but no longer than ``API_NEXT_CALL_AFTER`` from its start: under load
the webhooks meanwhile make one bigger batch (each call costs both processes a whole exchange
and a transaction per shard: the sync modes' throughput follows batch size), while a slow or
hanging call holds the others back for that long only. Retries (``shared.retry_policy``) and the breaker's
permits act on the batch call; a retry carries only the items still unanswered whose webhook
still waits, and a call backing off when the circuit opens stops waiting: its webhooks get the
circuit-open 503 at once instead of after the delay. Items the api answered 5xx are retried
while the others are answered; such a partly answered attempt counts as a success for the
breaker (the api is up and answering).
A webhook that stops waiting (client gone, deadline) closes its reply channel: it is left out
of later attempts and cannot disturb the others. A batch retried after a lost response is
answered by the api as duplicates for what it had applied (idempotent on provider event ids),
so nothing is applied twice and each webhook still gets a 2xx.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import trio

from ingest.api_client import counted_attempt
from ingest.breaker_actor import CircuitBreakerActor
from ingest.metrics import API_BATCH_SIZE
from shared.domain import Outcome
from shared.errors import (
    BadGateway,
    CircuitOpen,
    GatewayTimeout,
    WebhookError,
    error_for_problem_type,
    rejects_the_event,
)
from shared.logs import get_logger
from shared.messages import DisputeUpdate, InboundUpdate, OrderUpdate
from shared.retry_policy import TransientFailure, retrying
from shared.settings import Settings
from shared.tracing import current_traceparent
from shared.update_batch import BatchItem, ItemResult

log = get_logger(__name__)
Answer = Outcome | WebhookError | TransientFailure


class BatchApiClient(Protocol):
    """One attempt of a batch call: one result per item, or raises for the call as a whole
    (``TransientFailure`` for 5xx, unreachable, timeouts; ``BadGateway`` for an unusable answer)."""

    async def send_updates(self, items: Sequence[BatchItem]) -> list[ItemResult]: ...
    async def aclose(self) -> None: ...


class PartlyAnswered(TransientFailure):
    """Some items were answered, others failed transiently: retried, but the api is up."""


BREAKER_ANSWERS: tuple[type[Exception], ...] = (WebhookError, PartlyAnswered)


def answer_for(result: ItemResult) -> Answer:
    """An item's result read back as a single call's answer was (through the one error table)."""
    if result.status == 200:
        try:
            return Outcome(result.outcome)
        except ValueError:
            return BadGateway(f"unreadable answer from the api (outcome {result.outcome!r})")
    if result.status == 409:
        return Outcome.DUPLICATE
    if result.status >= 500:
        return TransientFailure(BadGateway(f"the api answered {result.status}: {result.detail}"))
    rejection = error_for_problem_type(result.problem_type)
    if rejection is None or not rejects_the_event(rejection):
        return BadGateway(f"unexpected answer from the api: {result.status} {result.problem_type}")
    return rejection(result.detail, errors=result.field_errors())


@dataclass(eq=False)
class _Waiter:
    item: BatchItem
    reply: trio.MemorySendChannel[Outcome | BaseException]

    def waiting(self) -> bool:
        return self.reply.statistics().open_receive_channels > 0

    def answer(self, answer: Outcome | BaseException) -> None:
        with self.reply:
            try:
                self.reply.send_nowait(answer)
            except trio.BrokenResourceError:
                pass  # the webhook stopped waiting meanwhile


@dataclass(eq=False)
class _Call:
    """One batch call: the waiters not answered yet, across its attempts."""

    pending: list[_Waiter]
    attempts: int = field(default=0)
    sent: bool = False  # an attempt has gone to the api

    def still_waiting(self) -> list[_Waiter]:
        self.pending = [waiter for waiter in self.pending if waiter.waiting()]
        return self.pending

    def settle(self, answers: Sequence[Answer]) -> None:
        """Answer the items with a final answer; keep the transient ones pending and raise for them."""
        retry: list[tuple[_Waiter, TransientFailure]] = []
        for waiter, answer in zip(self.pending, answers, strict=True):
            if isinstance(answer, TransientFailure):
                retry.append((waiter, answer))
            else:
                waiter.answer(answer)
        answered = len(self.pending) - len(retry)
        self.pending = [waiter for waiter, _ in retry]
        if retry:
            raise (PartlyAnswered(retry[0][1].final) if answered else retry[0][1])

    def fail(self, error: BaseException) -> None:
        """Every pending webhook raises ``error`` (each its own copy: one exception, one traceback)."""
        for waiter in self.pending:
            waiter.answer(_own_copy(error))
        self.pending = []


def _own_copy(error: BaseException) -> BaseException:
    try:
        return copy.copy(error)
    except Exception:  # noqa: BLE001 - an exception that cannot be copied is shared rather than lost
        return error


class UpdateForwarder:
    """The sync processor's ``ApiClient``: each call waits for its own item of a batch call."""

    def __init__(self, api: BatchApiClient, breaker: CircuitBreakerActor, settings: Settings,
                 rng: random.Random | None = None) -> None:
        self._api = api
        self._breaker = breaker
        self._settings = settings
        self._rng = rng or random.Random()  # one for the process's jitter: seeding one per call costs a syscall
        self._max_batch = settings.api_batch_max
        self._slots = trio.Semaphore(settings.api_calls_in_flight)
        self._under_way: dict[_Call, float] = {}  # attempts under way, and when each started
        self._attempt_ended = trio.Event()  # set (and replaced) whenever one ends
        # webhooks in flight are bounded by the server's connections; a full mailbox makes them wait
        self._send, self._mailbox = trio.open_memory_channel[_Waiter](settings.api_batch_max * 4)

    async def send_order_update(self, update: OrderUpdate) -> Outcome:
        return await self.forward(update)

    async def send_dispute_update(self, update: DisputeUpdate) -> Outcome:
        return await self.forward(update)

    async def aclose(self) -> None:
        await self._api.aclose()

    async def forward(self, update: InboundUpdate) -> Outcome:
        """The update's outcome, or the error it stands for (raised); a dispute named only by its
        payment goes as a ``payment_dispute`` item, which the api resolves through the payment's link.
        While the circuit is open the webhook is refused at once, not queued behind calls in flight."""
        if (refused := self._breaker.refusal()) is not None:
            raise refused
        reply_send, reply_receive = trio.open_memory_channel[Outcome | BaseException](1)
        with reply_receive:  # leaving it (cancelled or answered) tells the actor nobody waits
            await self._send.send(_Waiter(BatchItem(update, current_traceparent.get() or ""), reply_send))
            answer = await reply_receive.receive()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The actor loop: a webhook, then a call slot, then whatever has queued meanwhile; ends when
        cancelled. (Never a slot while idle: a retry of a call in flight must be able to get one.)"""
        async with trio.open_nursery() as calls, self._mailbox:
            task_status.started()
            while True:
                first = await self._mailbox.receive()
                await self._slots.acquire()  # released by the call after its first attempt
                await self._next_call_due()
                calls.start_soon(self._call, _Call([first, *self._take_queued()]))

    async def _next_call_due(self) -> None:
        """Return when the attempt under way ends, or ``API_NEXT_CALL_AFTER`` after the oldest one
        began — taken once, on entry: retries that start meanwhile neither extend nor restart the
        wait — or at once when nothing is under way or a full batch is queued already (waiting
        could not make it bigger)."""
        after = self._settings.api_next_call_after_seconds
        queued = self._mailbox.statistics().current_buffer_used
        if not self._under_way or after <= 0 or queued >= self._max_batch - 1:
            return
        ended = self._attempt_ended
        with trio.move_on_at(min(self._under_way.values()) + after):
            await ended.wait()

    def _take_queued(self) -> list[_Waiter]:
        taken: list[_Waiter] = []
        while len(taken) < self._max_batch - 1:
            try:
                taken.append(self._mailbox.receive_nowait())
            except trio.WouldBlock:
                break
        return taken

    async def _call(self, call: _Call) -> None:
        try:
            async for attempt in retrying(self._settings, self._rng, sleep=self._back_off):
                with attempt:
                    await self._attempt(call)
        except TransientFailure as exc:
            call.fail(exc.final)
        except CircuitOpen as exc:  # refused the first attempt (never sent), or a retry (sent, failed)
            exc.api_called = call.sent
            call.fail(exc)
        except Exception as exc:  # noqa: BLE001 - BadGateway, or a bug: each webhook raises it
            call.fail(exc)

    async def _back_off(self, seconds: float) -> None:
        """The delay before a retry, cut short once the circuit is open and its trial not due before
        the delay ends (re-read at every state change: it may open, or a failed trial open it again,
        meanwhile): the retry could only be refused, so the call's webhooks get their 503 with
        Retry-After now. Otherwise the whole delay is slept, as without a breaker."""
        deadline = trio.current_time() + seconds
        with trio.move_on_at(deadline):
            while not self._breaker.refuses_for(deadline - trio.current_time()):
                await self._breaker.changed()

    async def _attempt(self, call: _Call) -> None:
        """One try of the call's pending items, in a call slot and under a breaker permit."""
        if call.attempts > 0:
            if (refused := self._breaker.refusal_while_open()) is not None:
                raise refused  # a retry the open circuit would refuse waits for no call slot
            await self._slots.acquire()
        call.attempts += 1
        self._under_way[call] = trio.current_time()
        try:
            if not call.still_waiting():
                return
            async with self._breaker.permit(answers=BREAKER_ANSWERS):
                with counted_attempt(BREAKER_ANSWERS):
                    API_BATCH_SIZE.observe(len(call.pending))
                    call.sent = True
                    results = await self._send_in_time([waiter.item for waiter in call.pending])
                    call.settle([answer_for(result) for result in results])
        finally:
            del self._under_way[call]
            self._attempt_ended.set()
            self._attempt_ended = trio.Event()
            self._slots.release()

    async def _send_in_time(self, items: list[BatchItem]) -> list[ItemResult]:
        try:
            with trio.fail_after(self._settings.api_timeout_seconds):
                results = await self._api.send_updates(items)
        except trio.TooSlowError:
            raise TransientFailure(GatewayTimeout("the api did not answer in time")) from None
        if len(results) != len(items):
            raise BadGateway(f"the api answered {len(results)} results for {len(items)} updates")
        return results
