"""The writer actor turns concurrent submissions into few transactions, and survives a dead database."""

from __future__ import annotations

import pytest
import trio
import trio_asyncio

from api.shard_writer import ShardWriter
from shared.database import open_database
from shared.domain import Outcome
from shared.errors import DatabaseUnavailable
from shared.settings import Settings
from shared.sharding import shard_for
from tests.api.updates import at, order_update
from webhooks.embedded import free_port


async def _insert_orders(pool, users: list[str]) -> None:
    await pool.executemany("INSERT INTO orders (order_id, user_id, status, amount, currency)"
                           " VALUES ($1, $2, 'created', 1, 'EUR')", [(f"o-{u}", u) for u in users])


async def test_concurrent_updates_share_transactions(settings: Settings) -> None:
    users = [u for u in (f"user-{i}" for i in range(200)) if shard_for(u, 2) == 0][:50]
    with trio.fail_after(30):
        async with trio_asyncio.open_loop() as loop, open_database(loop, settings.database_urls) as database:
            await database.run(0, _insert_orders, users)
            writer = ShardWriter(database, 0, max_batch=64)
            outcomes: list[Outcome] = []

            async def submit(user: str) -> None:
                outcomes.append(await writer.submit(order_update(f"o-{user}", user, "paid", at(1))))

            async with trio.open_nursery() as nursery:
                await nursery.start(writer.run)
                async with trio.open_nursery() as clients:
                    for user in users:
                        clients.start_soon(submit, user)
                nursery.cancel_scope.cancel()
    assert outcomes == [Outcome.APPLIED] * 50
    stats = writer.statistics()
    assert stats.batches < 10 and stats.max_batch_seen > 1


async def test_a_dead_shard_fails_the_batch_not_the_actor(settings: Settings) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    with trio.fail_after(30):
        async with trio_asyncio.open_loop() as loop, open_database(loop, [dead]) as database:
            writer = ShardWriter(database, 0)
            async with trio.open_nursery() as nursery:
                await nursery.start(writer.run)
                for _ in range(2):  # the actor keeps answering after a failure
                    with pytest.raises(DatabaseUnavailable):
                        await writer.submit(order_update("o", "u", "paid", at(1)))
                nursery.cancel_scope.cancel()
