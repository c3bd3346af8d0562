"""Writers of the same rows in separate pools (two api processes, workers during a rebalance).

A locking statement that waited for a row sees that row's latest version but reads everything
else as of its start; ``shared/repository.py`` therefore locks the orders (and through them the
disputes) before the statement that reads the stored events. Were the read part of the locking
statement, an event stored by the writer we waited for would be missed:

- a redelivery would be judged against the state that event produced — when that judgement
  stores nothing (INVALID_TRANSITION) no unique key fires, and it would be answered 422 (or
  dead-lettered) instead of DUPLICATE;
- every overlap with a concurrent writer would cost a rollback and a retry, and overlapping,
  differently cut batches (an ingest retry racing its first call, workers at a rebalance) would
  run out of attempts: ``UniqueViolationError`` escaping ``apply_batch``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
import pytest
import trio
import trio_asyncio

from shared.database import Database, open_database
from shared.domain import Outcome
from shared.messages import Update
from shared.repository import apply_batch
from shared.settings import Settings
from tests.api.updates import at, dispute_update, order_update


@asynccontextmanager
async def _writers(settings: Settings, count: int) -> AsyncIterator[list[Database]]:
    """``count`` Databases (pools) on shard 0, like as many processes; shard 0 holds o1 (u1, created)."""
    async with trio_asyncio.open_loop() as loop, AsyncExitStack() as stack:
        databases = [await stack.enter_async_context(open_database(loop, settings.database_urls))
                     for _ in range(count)]
        await databases[0].run(0, _execute, "INSERT INTO orders (order_id, user_id, status, amount, currency)"
                                            " VALUES ('o1', 'u1', 'created', 1, 'EUR')")
        yield databases


async def _execute(pool: asyncpg.Pool, sql: str) -> None:
    await pool.execute(sql)


async def _waiting_for_locks(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM pg_stat_activity"
                                   " WHERE wait_event_type = 'Lock' AND datname = current_database()"))


async def _until_waiting(database: Database, count: int) -> None:
    with trio.fail_after(10):
        while await database.run(0, _waiting_for_locks) < count:
            await trio.sleep(0.01)


@pytest.mark.parametrize("kind", ["order", "dispute"])
async def test_a_redelivery_stored_by_the_writer_we_waited_for_is_a_duplicate(settings: Settings, kind: str) -> None:
    async with _writers(settings, 3) as (first, second, probe):
        earlier: Update
        later: Update
        if kind == "order":
            earlier, later = (order_update("o1", "u1", "authorized", at(5)),
                              order_update("o1", "u1", "paid", at(5)))  # the same second: not stale
            lock = "SELECT 1 FROM orders WHERE order_id = 'o1' FOR UPDATE"
        else:
            assert await first.run(0, apply_batch, [dispute_update("d1", "o1", "u1", "opened", at(1))]) == [
                Outcome.APPLIED]
            earlier, later = (dispute_update("d1", "o1", "u1", "evidence_required", at(5)),
                              dispute_update("d1", "o1", "u1", "lost", at(5)))
            lock = "SELECT 1 FROM disputes WHERE dispute_id = 'd1' FOR UPDATE"
        loop = trio_asyncio.current_loop.get()
        holder = await loop.run_aio_coroutine(asyncpg.connect(settings.database_urls[0]))
        await loop.run_aio_coroutine(holder.execute("BEGIN; " + lock))
        results: dict[str, list[Outcome]] = {}

        async def apply(name: str, database: Database, updates: list[Update]) -> None:
            results[name] = await database.run(0, apply_batch, updates)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(apply, "first delivery", first, [earlier, later])
            await _until_waiting(probe, 1)
            nursery.start_soon(apply, "redelivery", second, [earlier])
            await _until_waiting(probe, 2)
            await loop.run_aio_coroutine(holder.execute("COMMIT"))
        await loop.run_aio_coroutine(holder.close())
        assert results["first delivery"] == [Outcome.APPLIED, Outcome.APPLIED]
        assert results["redelivery"] == [Outcome.DUPLICATE]  # not INVALID_TRANSITION (paid -> authorized)


async def test_overlapping_batches_of_one_stream_never_exhaust_the_retries(settings: Settings) -> None:
    """Three writers apply one stream of events on 20 orders, cut in batches of 10, 37 and 100."""
    async with _writers(settings, 3) as databases:
        await databases[0].run(0, _execute, "INSERT INTO orders (order_id, user_id, status, amount, currency)"
                                            " SELECT 'h' || i, 'hu' || i, 'created', 1, 'EUR'"
                                            " FROM generate_series(0, 19) i")
        failures: list[str] = []
        for trial in range(4):
            stream: list[Update] = []
            for k in range(600):
                i = (k * 7 + trial) % 20
                stream.append(dispute_update(f"hd{trial}-{i}", f"h{i}", f"hu{i}", "opened", at(k)) if k % 3 == 0
                              else order_update(f"h{i}", f"hu{i}", "pending", at(trial * 1000 + k)))

            async def write(database: Database, cut: int, stream: list[Update] = stream) -> None:
                for start in range(0, len(stream), cut):
                    try:
                        await database.run(0, apply_batch, stream[start:start + cut])
                    except asyncpg.UniqueViolationError as error:
                        failures.append(f"cut {cut} at {start}: {error}")

            async with trio.open_nursery() as nursery:
                for database, cut in zip(databases, (10, 37, 100), strict=True):
                    nursery.start_soon(write, database, cut)
        assert failures == []


async def test_writers_creating_one_dispute_through_different_orders_store_it_once(settings: Settings) -> None:
    """The one race the order locks cannot line up: two events open the same new dispute but name
    different orders (the provider, or a bug, disagrees with itself). Both writers see no dispute;
    the second insert hits the unique key and its batch runs again, finding the dispute on the
    other order: one dispute, the loser a user mismatch — never an error."""
    async with _writers(settings, 2) as (first, second):
        await first.run(0, _execute, "INSERT INTO orders (order_id, user_id, status, amount, currency)"
                                     " SELECT p || '-' || i, 'u1', 'created', 1, 'EUR'"
                                     " FROM generate_series(0, 39) i, unnest(ARRAY['o1', 'o2']) p")
        outcomes: list[Outcome] = []

        async def open_disputes(database: Database, order: str) -> None:
            for i in range(40):
                outcomes.extend(await database.run(
                    0, apply_batch, [dispute_update(f"d{i}", f"{order}-{i}", "u1", "opened", at(1),
                                                    provider_event_id=f"pe-{order}-{i}")]))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(open_disputes, first, "o1")
            nursery.start_soon(open_disputes, second, "o2")
        assert sorted(outcomes).count(Outcome.APPLIED) == 40
        assert set(outcomes) <= {Outcome.APPLIED, Outcome.USER_MISMATCH}
        assert await first.run(0, _rows, "SELECT count(*), count(DISTINCT dispute_id) FROM disputes") == [(40, 40)]


async def _rows(pool: asyncpg.Pool, sql: str) -> list[tuple[object, ...]]:
    return [tuple(row) for row in await pool.fetch(sql)]
