"""``apply_batch``'s two-round-trip path against a real PostgreSQL: what it sends, and what happens
when another writer changes a row between its read and its write.

Each test runs ``apply_batch`` on a pool whose connections log every statement they send, so it
can say which path decided what: the unlocked read and the conditional write (no transaction),
and the locked transaction for the rows that changed meanwhile. The other writer is a plain
connection holding a row lock (and its change) until the batch waits on it: the interleaving is
forced, not hoped for.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
import trio
import trio_asyncio

from shared.asyncio_loop import open_asyncio_loop
from shared.domain import Outcome
from shared.messages import DisputeUpdate, OrderUpdate, Update
from shared.repository import apply_batch
from shared.settings import Settings
from tests.api.updates import at, dispute_update, order_update

T = TypeVar("T")


class _Shard:
    """Shard 0 (orders o1 of u1 and o3 of u3, both created), a pool logging what it sends, a second
    writer, and a connection to look with."""

    def __init__(self, loop: trio_asyncio.TrioEventLoop, pool: asyncpg.Pool, other: asyncpg.Connection,
                 probe: asyncpg.Connection, sent: list[str]) -> None:
        self.loop, self.pool, self.other, self.probe, self.sent = loop, pool, other, probe, sent

    async def aio(self, call: Callable[..., Awaitable[T]], *args: Any) -> T:
        result: T = await self.loop.run_aio_coroutine(call(*args))
        return result

    async def apply(self, updates: list[Update]) -> list[Outcome]:
        self.sent.clear()
        return await self.aio(apply_batch, self.pool, updates)

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self.aio(self.probe.fetch, sql)]

    async def until_waiting_for_a_lock(self) -> None:
        with trio.fail_after(10):
            while not await self.aio(self.probe.fetchval, "SELECT count(*) FROM pg_stat_activity WHERE"
                                     " wait_event_type = 'Lock' AND datname = current_database()"):
                await trio.sleep(0.01)

    def kinds_sent(self) -> list[str]:
        """Each statement the batch sent, by what it is (not asyncpg's look-up of a type it has not yet
        seen on that connection, with JIT off around it: once per connection, not per batch)."""
        names = {"SELECT 'order' AS kind, order_id AS key, NULL AS ref, user_id, status, last_event_at, xmin": "read",
                 "WITH locked AS MATERIALIZED": "write unless changed", "BEGIN": "BEGIN", "COMMIT": "COMMIT",
                 "SELECT 'order' AS kind, order_id AS key, NULL AS ref, user_id, status, last_event_at FROM":
                     "lock orders", "WITH locked AS (": "lock disputes, read", "WITH order_events_added": "write"}
        return [next((name for start, name in names.items() if sql.startswith(start)), sql[:40])
                for sql in self.sent if "typeinfo" not in sql and "'jit'" not in sql]


@asynccontextmanager
async def _shard(settings: Settings) -> AsyncIterator[_Shard]:
    sent: list[str] = []

    async def log_statements(connection: asyncpg.Connection) -> None:
        # The plans a long-lived process runs: asyncpg prepares every statement, and after five runs
        # PostgreSQL may plan it for any array lengths (a hash join where one run saw a loop).
        await connection.execute("SET plan_cache_mode = force_generic_plan")
        connection.add_query_logger(lambda query: sent.append(query.query))

    async def nothing_to_reset(connection: asyncpg.Connection) -> None:
        """As the project's pools: a connection goes back as it came."""

    with trio.fail_after(30):
        async with open_asyncio_loop() as loop:
            url = settings.database_urls[0]
            pool = await loop.run_aio_coroutine(asyncpg.create_pool(url, min_size=1, max_size=2, init=log_statements,
                                                                    reset=nothing_to_reset))
            other = await loop.run_aio_coroutine(asyncpg.connect(url))
            probe = await loop.run_aio_coroutine(asyncpg.connect(url))
            try:
                await loop.run_aio_coroutine(other.execute(
                    "INSERT INTO orders (order_id, user_id, status, amount, currency)"
                    " VALUES ('o1', 'u1', 'created', 1, 'EUR'), ('o3', 'u3', 'created', 1, 'EUR')"))
                yield _Shard(loop, pool, other, probe, sent)
            finally:
                await loop.run_aio_coroutine(probe.close())
                await loop.run_aio_coroutine(other.close())
                await loop.run_aio_coroutine(pool.close())


async def test_a_batch_nobody_else_touches_takes_two_statements_and_no_transaction(settings: Settings) -> None:
    async with _shard(settings) as shard:
        batch: list[Update] = [order_update("o1", "u1", "authorized", at(1)),
                               dispute_update("d1", "o3", "u3", "opened", at(1)),
                               order_update("o1", "u1", "paid", at(2))]
        assert await shard.apply(batch) == [Outcome.APPLIED] * 3
        assert shard.kinds_sent() == ["read", "write unless changed"]
        assert await shard.apply(batch[:1]) == [Outcome.DUPLICATE]
        assert shard.kinds_sent() == ["read"]  # nothing to write
        assert await shard.rows("SELECT order_id, status FROM orders ORDER BY order_id") == [
            ("o1", "paid"), ("o3", "created")]
        assert await shard.rows("SELECT dispute_id, order_id, status FROM disputes") == [("d1", "o3", "opened")]


async def test_an_order_changed_between_read_and_write_is_decided_again_locked(settings: Settings) -> None:
    """The other writer pays o1 (at second 9) while the batch is between its read and its write: the
    batch's o1 event, applied as of its read, is judged again against paid — stale — while its o3
    event stands as written by the first statement."""
    async with _shard(settings) as shard:
        await shard.aio(shard.other.execute, "BEGIN; UPDATE orders SET status = 'paid',"
                        " last_event_at = '2026-11-20T12:00:09Z' WHERE order_id = 'o1'")
        outcomes: list[Outcome] = []

        async def apply() -> None:
            outcomes.extend(await shard.apply([order_update("o1", "u1", "authorized", at(5)),
                                               order_update("o3", "u3", "paid", at(1))]))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(apply)
            await shard.until_waiting_for_a_lock()  # the write waits on o1's row
            await shard.aio(shard.other.execute, "COMMIT")
        assert outcomes == [Outcome.STALE, Outcome.APPLIED]
        assert shard.kinds_sent() == ["read", "write unless changed",
                                      "BEGIN", "lock orders", "lock disputes, read", "write", "COMMIT"]
        assert await shard.rows("SELECT order_id, status, applied FROM order_events ORDER BY order_id") == [
            ("o1", "authorized", False), ("o3", "paid", True)]
        assert await shard.rows("SELECT order_id, status FROM orders ORDER BY order_id") == [
            ("o1", "paid"), ("o3", "paid")]


async def test_a_dispute_created_between_read_and_write_is_decided_again_locked(settings: Settings) -> None:
    """The other writer creates d1 (won already) while the batch, which saw no d1, is about to open
    it: the batch's opening is judged again against the stored dispute (won cannot go back)."""
    async with _shard(settings) as shard:
        await shard.aio(shard.other.execute, "BEGIN; INSERT INTO disputes (dispute_id, order_id, user_id, status,"
                        " reason, amount, currency, last_event_at)"
                        " VALUES ('d1', 'o1', 'u1', 'won', 'fraudulent', 1, 'EUR', '2026-11-20T12:00:01Z')")
        outcomes: list[Outcome] = []

        async def apply() -> None:
            outcomes.extend(await shard.apply([dispute_update("d1", "o1", "u1", "opened", at(1)),
                                               order_update("o3", "u3", "paid", at(1))]))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(apply)
            await shard.until_waiting_for_a_lock()  # the insert waits on the other's uncommitted d1
            await shard.aio(shard.other.execute, "COMMIT")
        assert outcomes == [Outcome.INVALID_TRANSITION, Outcome.APPLIED]
        assert shard.kinds_sent()[:3] == ["read", "write unless changed", "BEGIN"]
        assert await shard.rows("SELECT dispute_id, status FROM disputes") == [("d1", "won")]
        assert await shard.rows("SELECT count(*) FROM dispute_events") == [(0,)]


async def test_a_stale_event_gives_its_order_a_new_row_version(settings: Settings) -> None:
    """So a writer that read the order before can no longer store beside it unseen."""
    async with _shard(settings) as shard:
        assert await shard.apply([order_update("o1", "u1", "paid", at(5))]) == [Outcome.APPLIED]
        (before,) = await shard.rows("SELECT xmin::text, status, last_event_at FROM orders WHERE order_id = 'o1'")
        assert await shard.apply([order_update("o1", "u1", "authorized", at(1))]) == [Outcome.STALE]
        (after,) = await shard.rows("SELECT xmin::text, status, last_event_at FROM orders WHERE order_id = 'o1'")
        assert after[0] != before[0]
        assert after[1:] == before[1:] == ("paid", dt.datetime(2026, 11, 20, 12, 0, 5, tzinfo=dt.UTC))


async def test_events_are_stored_in_the_batchs_order(settings: Settings) -> None:
    """An order's or a dispute's events are stored in the order they came (ids and ``stored_at`` say so
    to auditors), not in the order of their provider ids nor as a join of the written rows would hand
    them over (disputes one after another, in id order)."""
    async with _shard(settings) as shard:
        statuses = ("pending", "authorized", "paid")
        batch: list[Update] = []
        for step, status in enumerate(statuses):
            for order in ("o1", "o3"):
                user = "u" + order[1:]
                batch.append(order_update(order, user, status, at(step), provider_event_id=f"{order}-{9 - step}"))
                batch.append(dispute_update("d" + order, order, user, ("opened", "evidence_submitted", "won")[step],
                                            at(step), provider_event_id=f"d{order}-{9 - step}"))
        assert await shard.apply(batch) == [Outcome.APPLIED] * len(batch)
        assert shard.kinds_sent() == ["read", "write unless changed"]
        by_id = await shard.rows("SELECT provider_event_id FROM order_events ORDER BY id")
        by_time = await shard.rows("SELECT provider_event_id FROM dispute_events ORDER BY stored_at")
        assert [row[0] for row in by_id] == [u.provider_event_id for u in batch if isinstance(u, OrderUpdate)]
        disputes = sorted((u for u in batch if isinstance(u, DisputeUpdate)), key=lambda u: u.dispute_id)  # stable
        assert [row[0] for row in by_time] == [u.provider_event_id for u in disputes]


async def test_a_batch_cut_off_anywhere_is_whole_or_nothing_per_order_and_runs_again_as_duplicates(
        settings: Settings) -> None:
    """A deadline may end ``apply_batch`` at any await — during the read, the write, a lock wait, the
    locked redo. Whatever it stored stays whole per order (the write is one statement), and the batch
    sent again (a caller's retry) stores the rest: every event once, each order at its last event."""
    async with _shard(settings) as shard:
        await shard.aio(shard.probe.execute, "INSERT INTO orders (order_id, user_id, status, amount, currency)"
                        " SELECT 'c' || i, 'cu' || i, 'created', 1, 'EUR' FROM generate_series(0, 39) i")
        for attempt in range(40):
            batch: list[Update] = [order_update(f"c{attempt}", f"cu{attempt}", status, at(step))
                                   for step, status in enumerate(("pending", "authorized", "paid"))]
            with trio.move_on_after(attempt * 0.0005):
                await shard.apply(batch)
            assert set(await shard.apply(batch)) <= {Outcome.APPLIED, Outcome.DUPLICATE}
            assert await shard.rows(f"SELECT count(*) FROM order_events WHERE order_id = 'c{attempt}'") == [(3,)]
            assert await shard.rows(f"SELECT status FROM orders WHERE order_id = 'c{attempt}'") == [("paid",)]
