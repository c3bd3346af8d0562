"""Writers of the same rows in separate pools (two api processes, workers during a rebalance).

A batch is first applied unlocked: one read, one write of each row only if it is still the version
read (``shared/repository.py``); what another writer changed meanwhile, and every refusal, is
decided again in a locked transaction. The tests below hold for both paths and their mixes.

In the locked transaction, a locking statement that waited for a row sees that row's latest version but reads everything
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

import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
import pytest
import trio
import trio_asyncio

from shared.database import Database, open_database
from shared.domain import Outcome
from shared.messages import Update
from shared.repository import _apply_locked, apply_batch
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


@pytest.mark.parametrize("kind", ["order", "dispute"])
async def test_a_redelivery_racing_its_uncommitted_first_delivery_is_a_duplicate(settings: Settings,
                                                                                kind: str) -> None:
    """The first delivery's write has changed o1 (or created d1) and waits on d3, row-locked by a third
    writer. The redelivery of its second event, read unlocked, sees o1 created (no d1) and would refuse
    it (invalid transition, not found) — a refusal confirms nothing at write time, so it is decided
    again locked, after the first delivery committed: a duplicate."""
    async with _writers(settings, 3) as (first, second, probe):
        await first.run(0, _execute, "INSERT INTO disputes (dispute_id, order_id, user_id, status, reason, amount,"
                                     " currency, last_event_at) VALUES ('d3', 'o1', 'u1', 'opened', 'fraudulent', 1,"
                                     " 'EUR', '2026-11-20T12:00:00Z')")
        batch: list[Update] = ([order_update("o1", "u1", "paid", at(1)), order_update("o1", "u1", "refunded", at(2))]
                               if kind == "order" else
                               [dispute_update("d1", "o1", "u1", "opened", at(1)),
                                dispute_update("d1", "o1", "u1", "evidence_required", at(2))])
        batch.append(dispute_update("d3", "o1", "u1", "evidence_required", at(1)))
        loop = trio_asyncio.current_loop.get()
        holder = await loop.run_aio_coroutine(asyncpg.connect(settings.database_urls[0]))
        await loop.run_aio_coroutine(holder.execute("BEGIN; SELECT 1 FROM disputes WHERE dispute_id = 'd3' FOR UPDATE"))
        results: dict[str, list[Outcome]] = {}

        async def apply(name: str, database: Database, updates: list[Update]) -> None:
            results[name] = await database.run(0, apply_batch, updates)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(apply, "first delivery", first, batch)
            await _until_waiting(probe, 1)
            nursery.start_soon(apply, "redelivery", second, [batch[1]])
            await _until_waiting(probe, 2)  # decided again, locked: it waits for the first delivery
            await loop.run_aio_coroutine(holder.execute("COMMIT"))
        await loop.run_aio_coroutine(holder.close())
        assert results["first delivery"] == [Outcome.APPLIED] * 3
        assert results["redelivery"] == [Outcome.DUPLICATE]


async def test_an_unlocked_write_and_a_locked_one_do_not_deadlock(settings: Settings) -> None:
    """A locked writer holds o1 and waits for o3 (a third session's KEY SHARE on o3, as any foreign-key
    check takes); a batch that pays o3 and opens a dispute on o1 must wait for o1 before it takes o3,
    as the locked one did — else each waits for the other until PostgreSQL's deadlock timeout (1 s)."""
    async with _writers(settings, 3) as (locked, unlocked, probe):
        await locked.run(0, _execute, "INSERT INTO orders (order_id, user_id, status, amount, currency)"
                                      " VALUES ('o3', 'u3', 'created', 1, 'EUR')")
        loop = trio_asyncio.current_loop.get()
        holder = await loop.run_aio_coroutine(asyncpg.connect(settings.database_urls[0]))
        await loop.run_aio_coroutine(holder.execute("BEGIN; SELECT 1 FROM orders WHERE order_id = 'o3' FOR KEY SHARE"))
        results: dict[str, list[Outcome]] = {}

        async def apply_locked() -> None:
            results["locked"] = await locked.run(0, _apply_locked, [
                order_update("o1", "u1", "authorized", at(1)), order_update("o3", "u3", "authorized", at(1))], False)

        async def apply() -> None:
            results["unlocked"] = await unlocked.run(0, apply_batch, [
                order_update("o3", "u3", "paid", at(2)), dispute_update("d1", "o1", "u1", "opened", at(1))])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(apply_locked)
            await _until_waiting(probe, 1)  # holds o1, waits for o3
            nursery.start_soon(apply)
            await _until_waiting(probe, 2)  # waits for o1
            await loop.run_aio_coroutine(holder.execute("COMMIT"))
        await loop.run_aio_coroutine(holder.close())
        assert await probe.run(0, _rows, "SELECT deadlocks FROM pg_stat_database"
                                         " WHERE datname = current_database()") == [(0,)]
        assert results == {"locked": [Outcome.APPLIED, Outcome.APPLIED], "unlocked": [Outcome.APPLIED, Outcome.APPLIED]}


def _mixed_stream(rng: random.Random, trial: int, orders: int) -> list[Update]:
    """Every order's and one dispute of each order's whole path, entities interleaved at random."""
    paths: list[list[Update]] = []
    for i in range(orders):
        paths.append([order_update(f"m{i}", f"mu{i}", status, at(trial * 1000 + 10 * k + i),
                                   provider_event_id=f"t{trial}-m{i}-{k}")
                      for k, status in enumerate(("pending", "authorized", "paid", "refunded"))])
        paths.append([dispute_update(f"md{trial}-{i}", f"m{i}", f"mu{i}", status, at(trial * 1000 + 10 * k + i + 5),
                                     provider_event_id=f"t{trial}-md{i}-{k}", reason=f"r{k}", amount=100 + k,
                                     currency=("EUR", "USD", "GBP", "CHF")[k])
                      for k, status in enumerate(("opened", "evidence_required", "evidence_submitted", "won"))])
    stream: list[Update] = []
    while paths:
        path = rng.choice(paths)
        stream.append(path.pop(0))
        if not path:
            paths.remove(path)
    return stream


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_overlapping_writers_of_mixed_batches_end_at_the_latest_applied_events(settings: Settings,
                                                                                    seed: int) -> None:
    """Three writers deliver one stream of order and dispute events, each cut and rotated its own way,
    some with the workers' not-found deferral: nothing escapes, and every order and dispute ends at
    its latest applied event (disputes: with that event's details)."""
    rng = random.Random(seed)
    async with _writers(settings, 3) as databases:
        await databases[0].run(0, _execute, "INSERT INTO orders (order_id, user_id, status, amount, currency)"
                                            " SELECT 'm' || i, 'mu' || i, 'created', 1, 'EUR'"
                                            " FROM generate_series(0, 5) i")
        for trial in range(5):
            stream = _mixed_stream(rng, trial, 6)

            async def write(database: Database, cut: int, shift: int, stream: list[Update] = stream) -> None:
                mine = stream[shift:] + stream[:shift]
                for start in range(0, len(mine), cut):
                    assert len(await database.run(0, apply_batch, mine[start:start + cut], rng.random() < 0.5)) == len(
                        mine[start:start + cut])

            async with trio.open_nursery() as nursery:
                for database, cut, shift in zip(databases, (3, 7, 11), (0, 2, 5), strict=True):
                    nursery.start_soon(write, database, cut, shift)
        assert await databases[0].run(0, _rows, """
            SELECT o.order_id FROM orders o
            LEFT JOIN LATERAL (SELECT status, occurred_at FROM order_events WHERE order_id = o.order_id AND applied
                               ORDER BY occurred_at DESC, id DESC LIMIT 1) e ON true
            WHERE o.status IS DISTINCT FROM coalesce(e.status, 'created')
               OR o.last_event_at IS DISTINCT FROM e.occurred_at""") == []
        assert await databases[0].run(0, _rows, """
            SELECT d.dispute_id FROM disputes d
            JOIN LATERAL (SELECT * FROM dispute_events WHERE dispute_id = d.dispute_id AND applied
                          ORDER BY occurred_at DESC LIMIT 1) e ON true
            WHERE (d.status, d.reason, d.amount, d.currency, d.last_event_at)
                  IS DISTINCT FROM (e.status, e.reason, e.amount, e.currency, e.occurred_at)""") == []
        assert await databases[0].run(0, _rows, "SELECT count(*) FROM disputes") == [(30,)]


async def test_an_event_stored_stale_by_a_locked_writer_is_a_duplicate_to_an_unlocked_one(settings: Settings) -> None:
    """A dispute event's unique key holds its time (the table is partitioned by it), so the same
    provider event sent again with another time is caught by the rules' duplicate check only: the
    locked writer that stores it stale must still give the dispute a new row version, or a writer
    that read the dispute before finds its version unchanged and stores the event a second time."""
    async with _writers(settings, 3) as (locked, unlocked, probe):
        await locked.run(0, _execute, "INSERT INTO disputes (dispute_id, order_id, user_id, status, reason, amount,"
                                      " currency, last_event_at) VALUES ('d1', 'o1', 'u1', 'opened', 'r', 1, 'EUR',"
                                      " '2026-11-20T12:00:05Z')")
        loop = trio_asyncio.current_loop.get()
        holder = await loop.run_aio_coroutine(asyncpg.connect(settings.database_urls[0]))
        await loop.run_aio_coroutine(holder.execute("BEGIN; SELECT 1 FROM disputes WHERE dispute_id = 'd1' FOR UPDATE"))
        results: dict[str, list[Outcome]] = {}

        async def apply_locked() -> None:  # holds o1, waits for d1, then stores pe-x stale (1 s < 5 s)
            results["locked"] = await locked.run(0, _apply_locked, [
                dispute_update("d1", "o1", "u1", "won", at(1), provider_event_id="pe-x")], False)

        async def apply() -> None:  # reads d1 without pe-x, then waits for o1
            results["unlocked"] = await unlocked.run(0, apply_batch, [
                dispute_update("d1", "o1", "u1", "won", at(9), provider_event_id="pe-x")])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(apply_locked)
            await _until_waiting(probe, 1)
            nursery.start_soon(apply)
            await _until_waiting(probe, 2)
            await loop.run_aio_coroutine(holder.execute("COMMIT"))
        await loop.run_aio_coroutine(holder.close())
        assert results == {"locked": [Outcome.STALE], "unlocked": [Outcome.DUPLICATE]}
        assert await probe.run(0, _rows, "SELECT count(*) FROM dispute_events") == [(1,)]
