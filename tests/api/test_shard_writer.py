"""The writer actor turns concurrent submissions into few transactions, and survives a dead database."""

from __future__ import annotations

import datetime as dt

import pytest
import trio
import trio_asyncio

from api.shard_writer import API_POLICY, ShardWriter
from shared.database import open_database
from shared.domain import Outcome
from shared.errors import DatabaseUnavailable
from shared.messages import OrderUpdate
from shared.settings import Settings
from shared.shard_applier import REFUSED, ShardApplier
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


class _Unvalidated(OrderUpdate, frozen=True, kw_only=True):
    """An update that skipped our schema's checks, as a bug or an older schema could let through."""

    def __post_init__(self) -> None:
        pass


async def test_an_update_postgresql_refuses_fails_alone_not_its_batch(settings: Settings) -> None:
    """It passed our schema but not PostgreSQL's: it is refused, the requests batched with it apply."""
    users = [u for u in (f"user-{i}" for i in range(200)) if shard_for(u, 2) == 0][:20]
    edge_of_time = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=14)))  # no UTC value
    good = order_update("o-x", "x", "paid", at(1))
    refused = _Unvalidated(**{f: getattr(good, f) for f in good.__struct_fields__} | {"order_id": f"o-{users[0]}",
                              "user_id": users[0], "occurred_at": edge_of_time})
    with trio.fail_after(30):
        async with trio_asyncio.open_loop() as loop, open_database(loop, settings.database_urls) as database:
            await database.run(0, _insert_orders, users)
            writer = ShardWriter(database, 0, max_batch=64)
            outcomes: dict[str, object] = {}

            async def submit(update: OrderUpdate) -> None:
                outcomes[update.user_id] = await writer.submit(update)

            async with trio.open_nursery() as nursery:
                await nursery.start(writer.run)
                async with trio.open_nursery() as clients:
                    clients.start_soon(submit, refused)
                    for user in users[1:]:
                        clients.start_soon(submit, order_update(f"o-{user}", user, "paid", at(1)))
                nursery.cancel_scope.cancel()
    assert outcomes.pop(users[0]) == REFUSED
    assert list(outcomes.values()) == [Outcome.APPLIED] * (len(users) - 1)
    assert writer.statistics().max_batch_seen > 1  # they really shared a batch


async def test_an_update_postgresql_refuses_beside_a_refusal_leaves_the_others_applied(settings: Settings) -> None:
    """A refusal sends its order's events to be decided again, locked, after the rest of the batch was
    written; were the refused data sent only then, the batch would already be half stored when it
    fails, and run one update at a time the other user's update would come back a duplicate."""
    good = order_update("o-a", "a", "paid", at(2))
    refused = _Unvalidated(**{f: getattr(good, f) for f in good.__struct_fields__}
                           | {"occurred_at": dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=14)))})
    batch = [order_update("o-a", "a", "refunded", at(1)),  # created -> refunded: an invalid transition
             refused,
             order_update("o-b", "b", "paid", at(1))]
    with trio.fail_after(30):
        async with trio_asyncio.open_loop() as loop, open_database(loop, settings.database_urls) as database:
            await database.run(0, _insert_orders, ["a", "b"])
            outcomes = await ShardApplier(database, API_POLICY).apply(0, batch)
    assert outcomes == [Outcome.INVALID_TRANSITION, REFUSED, Outcome.APPLIED]
