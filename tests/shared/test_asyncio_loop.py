"""Cancelled asyncio timers leave trio-asyncio's heap instead of living until they would fire.

Issue #15: the workers' RSS grew for minutes under a steady load because every asyncpg query
and pool release left a cancelled timer (and its contextvars Context) alive for 30 s or
300 s. Each test counts the ``TimerHandle`` objects still alive: with plain
``trio_asyncio.open_loop`` the first holds all 10,000 and the second two per call.
"""

from __future__ import annotations

import asyncio
import gc

import trio
import trio_asyncio

from shared.asyncio_loop import MIN_TIMERS, open_asyncio_loop
from shared.database import open_database


def _timers_alive() -> int:
    gc.collect()
    return sum(isinstance(thing, asyncio.TimerHandle) for thing in gc.get_objects())


def _nothing() -> None:
    pass


async def _taken_in(loop: trio_asyncio.TrioEventLoop) -> None:
    """Until the loop has moved every queued handle into its timer heap (its queue is FIFO)."""
    await loop.run_aio_coroutine(asyncio.sleep(0))


async def test_cancelled_timers_are_dropped_from_the_heap() -> None:
    with trio.fail_after(30):
        async with open_asyncio_loop() as loop:
            before = _timers_alive()
            for _ in range(20):
                timers = [loop.call_later(300, _nothing) for _ in range(500)]
                await _taken_in(loop)
                for timer in timers:
                    timer.cancel()
                del timers
            assert _timers_alive() - before <= 2 * 500  # of 10,000 cancelled


async def test_live_timers_stay_and_fire() -> None:
    """Compactions happen (the cancelled timers are in the heap first) and keep the live ones."""
    with trio.fail_after(30):
        async with open_asyncio_loop() as loop:
            fired = trio.Event()
            kept = [loop.call_later(0.2 + n / 1000, fired.set) for n in range(MIN_TIMERS)]
            doomed = [loop.call_later(300, _nothing) for _ in range(4 * MIN_TIMERS)]
            await _taken_in(loop)
            heap = loop._timers
            assert len(heap) == 5 * MIN_TIMERS
            for timer in doomed:
                timer.cancel()
            assert len(heap) < 5 * MIN_TIMERS  # compacted in place: the same list the loop reads
            assert all(timer in heap for timer in kept)
            await fired.wait()
            assert not any(timer.cancelled() for timer in kept)


CALLS = 2_000


async def test_database_calls_leave_no_timers_behind(empty_database_url: str) -> None:
    """asyncpg's per-query command timeout and per-release idle timer, on the real PostgreSQL."""
    with trio.fail_after(120):
        async with open_asyncio_loop() as loop, open_database(loop, [empty_database_url]) as database:
            await database.ping(0)
            before = _timers_alive()
            for _ in range(CALLS):
                await database.ping(0)
            assert _timers_alive() - before < CALLS // 4
