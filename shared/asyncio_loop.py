"""The asyncio loop a trio process runs asyncpg (and grpc.aio) on, without dead timers piling up.

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
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio_asyncio

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


@asynccontextmanager
async def open_asyncio_loop() -> AsyncIterator[trio_asyncio.TrioEventLoop]:
    async with trio_asyncio.open_loop() as loop:
        drop_cancelled_timers(loop)
        yield loop
