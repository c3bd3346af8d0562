"""ShardedBatchWriter with an in-memory stand-in for the database (a unit test of this module)."""

from __future__ import annotations

import asyncpg
import trio

from shared.domain import Outcome
from shared.errors import DatabaseUnavailable
from shared.messages import Update
from shared.shard_applier import REFUSED
from tests.api.updates import at, order_update
from workers.batch_writer import ShardedBatchWriter


class FakeDatabase:
    """One shard; refuses any batch holding a 'poison' order; can be down for the first calls."""

    shard_count = 1

    def __init__(self, down_for: int = 0) -> None:
        self.down_for = down_for
        self.batches: list[list[str]] = []

    async def run(self, shard: int, work: object, updates: list[Update], defer: bool) -> list[Outcome]:
        if self.down_for:
            self.down_for -= 1
            raise DatabaseUnavailable("connection refused")
        self.batches.append([u.order_id for u in updates])
        if any(u.order_id == "poison" for u in updates):
            raise asyncpg.DataError("invalid byte sequence for encoding UTF8")
        return [Outcome.APPLIED] * len(updates)


async def test_a_refused_event_is_isolated_and_the_others_applied_in_order() -> None:
    database = FakeDatabase()
    writer = ShardedBatchWriter(database, "orders.webhooks")  # type: ignore[arg-type]
    updates = [order_update(o, "u1", "paid", at(i)) for i, o in enumerate(["a", "poison", "b"])]
    outcomes = await writer.apply(updates)
    assert outcomes == [Outcome.APPLIED, REFUSED, Outcome.APPLIED]
    assert database.batches == [["a", "poison", "b"], ["a"], ["poison"], ["b"]]


async def test_a_down_database_is_retried_in_place(autojump_clock: trio.abc.Clock) -> None:
    database = FakeDatabase(down_for=4)
    writer = ShardedBatchWriter(database, "orders.webhooks")  # type: ignore[arg-type]
    started = trio.current_time()
    outcomes = await writer.apply([order_update("a", "u1", "paid", at(1))])
    assert outcomes == [Outcome.APPLIED] and database.batches == [["a"]]
    assert trio.current_time() - started >= 0.1 * 0.75 * (1 + 2 + 4 + 8)  # backed off 4 times, doubling
