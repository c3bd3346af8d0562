"""``apply_batch`` against a real PostgreSQL: every outcome in one batch, what it writes, and two
writers racing for the same rows (the locks and the retry after a lost race)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
async def _shard(settings: Settings) -> AsyncIterator[Database]:
    """Shard 0 of a fresh database, holding orders o1 (u1, created), o2 (u2, paid), o3 (u3, created)."""
    with trio.fail_after(30):
        async with trio_asyncio.open_loop() as loop, open_database(loop, settings.database_urls) as database:
            await database.run(0, _execute,
                               "INSERT INTO orders (order_id, user_id, status, amount, currency, last_event_at)"
                               " VALUES ('o1', 'u1', 'created', 1, 'EUR', NULL),"
                               " ('o2', 'u2', 'paid', 1, 'EUR', '2026-11-20T12:00:10Z'),"
                               " ('o3', 'u3', 'created', 1, 'EUR', NULL)")
            yield database


async def _execute(pool: asyncpg.Pool, sql: str) -> None:
    await pool.execute(sql)


async def _rows(pool: asyncpg.Pool, sql: str) -> list[tuple[object, ...]]:
    return [tuple(row) for row in await pool.fetch(sql)]


async def _apply(database: Database, updates: list[Update], defer: bool = False) -> list[Outcome]:
    return await database.run(0, apply_batch, updates, defer)


async def test_every_outcome_in_one_batch_and_what_is_written(settings: Settings) -> None:
    async with _shard(settings) as database:
        earlier = order_update("o1", "u1", "authorized", at(1))
        assert await _apply(database, [earlier]) == [Outcome.APPLIED]
        opened_before = dispute_update("d2", "o2", "u2", "opened", at(20))
        assert await _apply(database, [opened_before]) == [Outcome.APPLIED]
        paid = order_update("o1", "u1", "paid", at(5))
        batch: list[Update] = [
            paid,                                                   # applied
            order_update("o1", "u1", "pending", at(3)),             # stale (before paid's time)
            earlier,                                                # stored before: duplicate
            paid,                                                   # earlier in this batch: duplicate
            order_update("o2", "u2", "failed", at(30)),             # paid -> failed: invalid
            order_update("o3", "u-else", "paid", at(1)),            # another user's order
            order_update("missing", "u9", "paid", at(1)),           # no such order
            dispute_update("d1", "o1", "u1", "opened", at(6)),      # a new dispute: created
            dispute_update("d1", "o1", "u1", "won", at(7)),         # and moved on in the same batch
            dispute_update("d3", "o3", "u3", "won", at(1)),         # a new dispute must start opened
            dispute_update("d4", "nope", "u3", "opened", at(1)),    # on an existing order
            dispute_update("d5", "o3", "u-else", "opened", at(1)),  # of the order's user
            opened_before,                                          # duplicate
            dispute_update("d2", "o2", "u2", "lost", at(19)),       # stale
            dispute_update("d2", "o2", "u-else", "lost", at(25)),   # another user's dispute
        ]
        assert await _apply(database, batch) == [
            Outcome.APPLIED, Outcome.STALE, Outcome.DUPLICATE, Outcome.DUPLICATE, Outcome.INVALID_TRANSITION,
            Outcome.USER_MISMATCH, Outcome.NOT_FOUND, Outcome.APPLIED, Outcome.APPLIED, Outcome.NOT_FOUND,
            Outcome.NOT_FOUND, Outcome.USER_MISMATCH, Outcome.DUPLICATE, Outcome.STALE, Outcome.USER_MISMATCH]
        assert await database.run(0, _rows, "SELECT order_id, status, last_event_at = '2026-11-20T12:00:05Z'"
                                            " FROM orders ORDER BY order_id") == [
            ("o1", "paid", True), ("o2", "paid", False), ("o3", "created", None)]
        assert await database.run(0, _rows, "SELECT order_id, status, applied FROM order_events ORDER BY id") == [
            ("o1", "authorized", True), ("o1", "paid", True), ("o1", "pending", False)]
        assert await database.run(0, _rows, "SELECT dispute_id, order_id, user_id, status FROM disputes"
                                            " ORDER BY dispute_id") == [
            ("d1", "o1", "u1", "won"), ("d2", "o2", "u2", "opened")]
        assert await database.run(0, _rows, "SELECT dispute_id, status, applied FROM dispute_events"
                                            " ORDER BY dispute_id, occurred_at") == [
            ("d1", "opened", True), ("d1", "won", True), ("d2", "lost", False), ("d2", "opened", True)]


async def test_a_users_events_after_a_not_found_one_are_deferred(settings: Settings) -> None:
    async with _shard(settings) as database:
        batch: list[Update] = [
            order_update("o-gone", "u1", "paid", at(1)),       # not found: u1's later events wait
            order_update("o1", "u1", "paid", at(2)),
            order_update("o3", "u3", "paid", at(2)),           # another user goes ahead
        ]
        assert await _apply(database, batch, defer=True) == [Outcome.NOT_FOUND, Outcome.DEFERRED, Outcome.APPLIED]
        assert await database.run(0, _rows, "SELECT order_id, status FROM orders ORDER BY order_id") == [
            ("o1", "created"), ("o2", "paid"), ("o3", "paid")]


@pytest.mark.parametrize("kind", ["order", "dispute"])
async def test_writers_racing_with_the_same_event_store_it_once(settings: Settings, kind: str) -> None:
    """Four writers of one event at once: the orders' locks line them up, the ones after the first
    find the event stored — a duplicate, never a second row or an error (a new dispute's order is
    locked too, so its creators also wait for each other)."""
    async with _shard(settings) as database:
        update = (order_update("o1", "u1", "paid", at(1)) if kind == "order"
                  else dispute_update("d1", "o1", "u1", "opened", at(1)))
        outcomes: list[list[Outcome]] = []

        async def write() -> None:
            outcomes.append(await _apply(database, [update]))

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(write)
        assert sorted(o for (o,) in outcomes) == [Outcome.APPLIED] + [Outcome.DUPLICATE] * 3
        assert await database.run(0, _rows, f"SELECT count(*) FROM {kind}_events") == [(1,)]


async def test_concurrent_writers_of_one_order_take_turns(settings: Settings) -> None:
    """Each batch locks the order it changes: 20 concurrent events end in one consistent state, each
    stored once, the order at its latest applied event."""
    async with _shard(settings) as database:
        updates = [order_update("o1", "u1", "authorized", at(second)) for second in range(1, 21)]
        outcomes: list[Outcome] = []

        async def write(update: Update) -> None:
            outcomes.extend(await _apply(database, [update]))

        async with trio.open_nursery() as nursery:
            for update in updates:
                nursery.start_soon(write, update)
        assert len(outcomes) == 20 and set(outcomes) <= {Outcome.APPLIED, Outcome.STALE}
        assert await database.run(0, _rows, "SELECT count(*), count(*) FILTER (WHERE applied) FROM order_events") == [
            (20, outcomes.count(Outcome.APPLIED))]
        assert await database.run(0, _rows, "SELECT last_event_at = '2026-11-20T12:00:20Z' FROM orders"
                                            " WHERE order_id = 'o1'") == [(True,)]


async def test_a_disputes_events_keep_the_batchs_order_when_decided_locked(settings: Settings) -> None:
    """A refusal sends its dispute's events to the locked transaction: still stored in the batch's
    order (``stored_at`` is what auditors order by), not in their provider ids' order."""
    async with _shard(settings) as database:
        batch: list[Update] = [
            dispute_update("d1", "o1", "u1", "opened", at(1), provider_event_id="pe-9"),
            dispute_update("d1", "o1", "u1", "evidence_required", at(2), provider_event_id="pe-8"),
            dispute_update("d1", "o1", "u1", "won", at(3), provider_event_id="pe-7"),  # not from evidence_required
            dispute_update("d1", "o1", "u1", "lost", at(4), provider_event_id="pe-6")]
        assert await _apply(database, batch) == [Outcome.APPLIED, Outcome.APPLIED, Outcome.INVALID_TRANSITION,
                                                 Outcome.APPLIED]
        assert await database.run(0, _rows, "SELECT provider_event_id FROM dispute_events ORDER BY stored_at") == [
            ("pe-9",), ("pe-8",), ("pe-6",)]
