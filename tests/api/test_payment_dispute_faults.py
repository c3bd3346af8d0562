"""A dispute named by its payment while the payment links' shard is down: 503 for it alone.

The api resolves such disputes before applying a batch; the lookup's shard refusing connections
must not fail the batch (a 500) nor its neighbours: the dispute's item is 503 (ingest retries it,
Stripe's webhook gets 503 + Retry-After), the other items are applied as usual.
"""

from __future__ import annotations

import socket

import trio
import trio_asyncio

from api.batch_endpoint import apply_items
from api.updates import UpdateApplier
from shared.database import open_database
from shared.settings import Settings
from shared.sharding import shard_for
from shared.update_batch import BatchItem
from tests.api.updates import at, order_update, payment_dispute_update


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed on return: connects are refused


async def _insert_order(pool, order_id: str, user_id: str) -> None:  # noqa: ANN001 - an asyncpg pool
    await pool.execute("INSERT INTO orders (order_id, user_id, status, amount, currency)"
                       " VALUES ($1, $2, 'created', 1000, 'EUR')", order_id, user_id)


async def test_a_dispute_whose_links_shard_is_down_is_a_503_item_alone(settings: Settings) -> None:
    user = next(u for u in (f"user-{i}" for i in range(100)) if shard_for(u, 2) == 0)
    payment = next(p for p in (f"pi_{i}" for i in range(100)) if shard_for(p, 2) == 1)
    down = f"postgresql://postgres@127.0.0.1:{_refused_port()}/none"
    with trio.fail_after(60):
        async with trio_asyncio.open_loop() as loop, \
                open_database(loop, [str(settings.database_urls[0]), down]) as database:
            await database.run(0, _insert_order, f"o-{user}", user)
            items = [BatchItem(payment_dispute_update("d-down", payment, "opened", at(5))),
                     BatchItem(order_update(f"o-{user}", user, "paid", at(1)))]
            results = await apply_items(UpdateApplier(database, None), items, "http")
    assert [r.status for r in results] == [503, 200]
    assert results[0].problem_type.endswith(":database-unavailable")
