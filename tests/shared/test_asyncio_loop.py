"""The project's asyncio loop: cancelled timers leave trio-asyncio's heap; queued callbacks run
without a trio deadline each, in order, without starving trio or the timers.

Issue #15: the workers' RSS grew for minutes under a steady load because every asyncpg query
and pool release left a cancelled timer (and its contextvars Context) alive for 30 s or
300 s. Those tests count the ``TimerHandle`` objects still alive: with plain
``trio_asyncio.open_loop`` the first holds all 10,000 and the second two per call.
Issue #13: a deadline per callback was a quarter of the api's CPU per batch; with plain
``trio_asyncio.open_loop`` the deadline count below is one per callback.
"""

from __future__ import annotations

import asyncio
import gc
import random
from typing import Any

import pytest
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


async def test_queued_callbacks_run_in_order_without_a_deadline_each(monkeypatch: pytest.MonkeyPatch) -> None:
    deadlines = 0
    move_on_after = trio.move_on_after

    def counted(seconds: float, **kwargs: Any) -> trio.CancelScope:
        nonlocal deadlines
        deadlines += 1
        return move_on_after(seconds, **kwargs)

    with trio.fail_after(30):
        async with open_asyncio_loop() as loop:
            loop.call_later(300, _nothing)  # a pending timer, as asyncpg's command timeout always is
            await _taken_in(loop)
            ran: list[int] = []
            monkeypatch.setattr(trio, "move_on_after", counted)
            for n in range(1_000):
                loop.call_soon(ran.append, n)
            await _taken_in(loop)
            monkeypatch.setattr(trio, "move_on_after", move_on_after)
            assert ran == list(range(1_000))
            assert deadlines <= 10  # a wait only when the queue ran empty


async def test_a_callback_chain_leaves_trio_tasks_and_timers_running() -> None:
    """A callback that always queues another keeps the queue busy: trio tasks still get their turn,
    timers still fire, and the loop still closes."""
    with trio.fail_after(30):
        async with open_asyncio_loop() as loop:
            steps = 0
            running = True

            def step() -> None:
                nonlocal steps
                steps += 1
                if running:
                    loop.call_soon(step)

            loop.call_soon(step)
            fired = trio.Event()
            loop.call_later(0.05, fired.set)
            await trio.sleep(0.1)  # a trio task sleeping while the chain runs
            await fired.wait()
            before = steps
            while steps == before:  # the chain keeps running between trio's turns (the test's deadline bounds it)
                await trio.lowlevel.checkpoint()
            running = False


async def test_the_loop_drains_its_queue_when_it_closes() -> None:
    ran: list[int] = []
    with trio.fail_after(30):
        async with open_asyncio_loop() as loop:
            for n in range(100):
                loop.call_soon(ran.append, n)
    assert ran == list(range(100))


async def test_an_error_nobody_awaited_is_logged_and_the_loop_goes_on(capsys: pytest.CaptureFixture[str]) -> None:
    """asyncpg abandons such a future when a deadline cancels a pool's connect mid-TLS negotiation;
    trio-asyncio's own handler raised it into the loop's nursery, ending the process."""
    with trio.fail_after(30):
        async with open_asyncio_loop() as loop:
            future = loop.create_future()
            future.set_exception(ConnectionError("unexpected connection_lost() call"))
            del future
            gc.collect()  # asyncio reports "Future exception was never retrieved" here
            await _taken_in(loop)
            assert await loop.run_aio_coroutine(asyncio.sleep(0, result="still running")) == "still running"
    logged = capsys.readouterr()
    assert "an asyncio error nobody awaited" in logged.out + logged.err


async def test_an_exception_in_a_callback_still_ends_the_loop() -> None:
    def broken() -> None:
        raise ValueError("a bug in a callback")

    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match="a bug"), flatten_subgroups=True), trio.fail_after(30):
        async with open_asyncio_loop() as loop:
            loop.call_soon(broken)
            await trio.sleep_forever()


async def _pool_work(pool: Any, statements: int) -> None:
    async with pool.acquire() as connection, connection.transaction():
        for _ in range(statements):
            await connection.fetchval("SELECT 1")


async def test_deadlines_cutting_pool_work_anywhere_leave_the_loop_and_the_pool_working(
        empty_database_url: str) -> None:
    """On the real PostgreSQL: deadlines cancel pool work at random points — in a query, a transaction,
    a pool's connect (its TLS negotiation abandons a failed future). With trio-asyncio's own
    exception handler about half of these seeds ended the loop."""
    for seed in range(5):
        rnd = random.Random(seed)
        with trio.fail_after(60):
            async with open_asyncio_loop() as loop, open_database(loop, [empty_database_url], max_size=4) as database:

                async def worker(rnd: random.Random) -> None:
                    for _ in range(15):
                        with trio.move_on_after(rnd.choice([0, 0.0002, 0.001, 0.003, 0.01, 0.05])):
                            await database.run(0, _pool_work, rnd.randint(1, 20))

                async with trio.open_nursery() as nursery:
                    for _ in range(6):
                        nursery.start_soon(worker, rnd)
                assert await database.run(0, lambda pool: pool.fetchval("SELECT 41 + 1")) == 42
