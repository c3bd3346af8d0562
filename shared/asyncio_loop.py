"""The asyncio loop a trio process runs asyncpg (and grpc.aio) on: no dead timers piling up, no
trio deadline per callback.

asyncio's own loop drops cancelled timers from its heap once they are more than half of
it. trio-asyncio (0.16) keeps every cancelled ``TimerHandle`` — and the contextvars
``Context`` it holds — until the moment it would have fired. asyncpg arms timers it
nearly always cancels: one per query (``command_timeout``, 30 s) and one at every pool
release (the idle-connection timer, ``max_inactive_connection_lifetime``, 300 s). In a
worker at 300 events/s ~55,000 cancelled timers were alive at any moment once the 300 s
ones had piled up, and its RSS climbed for 6 minutes, from 76 to 94 MB, before levelling
off at a height set by the rate: issue #15's worker growth. With them dropped, ~200 timers
are alive and the same worker stays at 77–79 MB from its second minute on.

``open_asyncio_loop`` is ``trio_asyncio.open_loop`` with asyncio's rule put back: count
cancellations, and when the cancelled ones may be more than half of a heap of over 100,
rebuild the heap from the live ones (a linear pass, amortised over as many cancellations).
It reaches into trio-asyncio's private ``_timers`` heap and overrides its no-op
``_timer_handle_cancelled``, the hook asyncio's ``TimerHandle.cancel`` calls on every loop
(``BaseEventLoop`` counts there); ``tests/shared/test_asyncio_loop.py`` fails if a
trio-asyncio release moves either.

It also runs a queued callback without a trio deadline. trio-asyncio's loop takes each callback
(asyncpg: a few per round trip to PostgreSQL) with ``move_on_after(time to the next timer):
await receive()`` — a cancel scope and a deadline registered and withdrawn per callback, even
when one is already queued; with asyncpg's per-query timer always pending, that was ~25 % of
the CPU of applying a batch of updates (7.3 → 5.3 ms per 26-update, two-shard batch on a slow
VM; ~10 % of the api's CPU per webhook at peak). A
queued callback is now taken with the loop's own ``no_wait`` path (the one its shutdown drains
with), followed by a plain checkpoint so trio's other tasks still run between callbacks; only an
empty queue waits with the deadline, as before. Order (due timers first, then FIFO) is unchanged.

And an error nobody awaited is logged, not raised. trio-asyncio raises every error reported to
the loop's exception handler into the loop's nursery, which ends the process — including
asyncio's "Future exception was never retrieved", reported when an abandoned future is
collected. asyncpg leaves one behind when a trio deadline cancels a pool's connect during its
TLS negotiation (``ConnectionError: unexpected connection_lost() call``): a shard that is slow
to accept connections could end the api or a worker. asyncio itself only logs such reports;
so does this loop now. Every other report (an exception in a callback) still raises.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio_asyncio

from shared.logs import get_logger

log = get_logger(__name__)

MIN_TIMERS = 100  # asyncio's _MIN_SCHEDULED_TIMER_HANDLES
MAX_CANCELLED_SHARE = 0.5  # asyncio's _MIN_CANCELLED_TIMER_HANDLES_FRACTION


def drop_cancelled(timers: list[asyncio.TimerHandle]) -> None:
    """Rebuild the heap ``timers`` in place from its live timers."""
    timers[:] = [timer for timer in timers if not timer.cancelled()]
    heapq.heapify(timers)


class CancelledTimers:
    """The loop's ``_timer_handle_cancelled`` hook: counts, and compacts the heap when due.

    The count is an upper bound (a cancelled timer may also have left the heap by falling
    due), so a compaction may find less to drop than counted; it still runs at most once
    per half a heap's worth of cancellations."""

    def __init__(self, timers: list[asyncio.TimerHandle]) -> None:
        self._timers = timers
        self.cancelled = 0

    def __call__(self, handle: asyncio.TimerHandle) -> None:
        self.cancelled += 1
        if len(self._timers) > MIN_TIMERS and self.cancelled > len(self._timers) * MAX_CANCELLED_SHARE:
            drop_cancelled(self._timers)
            self.cancelled = 0


def drop_cancelled_timers(loop: trio_asyncio.TrioEventLoop) -> None:
    """Install the hook on ``loop`` (a no-op on a loop without trio-asyncio's timer heap)."""
    timers = getattr(loop, "_timers", None)
    if isinstance(timers, list):
        loop._timer_handle_cancelled = CancelledTimers(timers)


def take_queued_callbacks_at_once(loop: trio_asyncio.TrioEventLoop) -> None:
    """Wrap ``loop``'s step (``_main_loop_one``, looked up on the loop at every step) so that a
    queued callback is run without a trio deadline; an empty queue waits as before."""
    step = loop._main_loop_one

    async def step_taking_queued_at_once(no_wait: bool = False) -> None:
        try:
            await step(no_wait=True)  # a due timer, else the queue's head, else WouldBlock (nothing taken)
        except trio.WouldBlock:
            if no_wait:
                raise
            await step()  # nothing queued: wait, bounded by the next timer
            return
        if not no_wait:  # (the loop's shutdown drains with no_wait, back to back, as before)
            await trio.lowlevel.cancel_shielded_checkpoint()  # the loop runs shielded: yield, never raise

    loop._main_loop_one = step_taking_queued_at_once


def log_abandoned_errors(loop: trio_asyncio.TrioEventLoop) -> None:
    """Handle ``loop``'s "... exception was never retrieved" reports with a log line."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).endswith("exception was never retrieved"):
            log.warning("an asyncio error nobody awaited", report=context.get("message"),
                        error=repr(context.get("exception")))
            return
        loop.default_exception_handler(context)  # trio-asyncio's: log, then raise into the loop's nursery

    loop.set_exception_handler(handle)


@asynccontextmanager
async def open_asyncio_loop() -> AsyncIterator[trio_asyncio.TrioEventLoop]:
    async with trio_asyncio.open_loop() as loop:
        drop_cancelled_timers(loop)
        take_queued_callbacks_at_once(loop)
        log_abandoned_errors(loop)
        yield loop
