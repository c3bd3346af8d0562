"""Batches when a shard is down or hangs, and bodies nested too deeply: per-item answers, never a 500.

A batch mixes users of every shard, so one shard's trouble must stay that shard's items'
trouble: a refused connection is 503 for its items (and for a not-found item whose
user-mismatch check needs it), a shard that accepts and never answers is 503 for its items
within the batch's shard deadline — while the healthy shard's items are answered.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator, Sequence

import httpx
import pytest
import trio
import trio_asyncio

from api.batch_endpoint import apply_items
from api.service import serve_api
from api.shard_writer import ShardWriter
from api.updates import UpdateApplier
from shared.database import Database, open_database
from shared.messages import OrderUpdate
from shared.settings import Settings
from shared.sharding import shard_for
from shared.update_batch import BatchItem
from tests.api.conftest import INTERNAL
from tests.api.updates import at, order_update

SHARD_DEADLINE_SECONDS = 1.0


def users_on(shard: int, count: int) -> list[str]:
    return [user for user in (f"user-{i}" for i in range(400)) if shard_for(user, 2) == shard][:count]


async def _insert_orders(pool, users: Sequence[str]) -> None:  # noqa: ANN001 - an asyncpg pool
    await pool.executemany("INSERT INTO orders (order_id, user_id, status, amount, currency)"
                           " VALUES ($1, $2, 'created', 1, 'EUR')", [(f"o-{user}", user) for user in users])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that completes TCP connects (the backlog) and never answers: a hung server."""
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)
        yield hole.getsockname()[1]


@pytest.fixture
def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed on return: connects are refused


async def _apply(live_url: str, second_url: str, seeded: Sequence[str], updates: list[OrderUpdate]) -> list[int]:
    """The item statuses of one batch applied through the api's applier, shard 1 at ``second_url``."""
    async with trio_asyncio.open_loop() as loop, open_database(loop, [live_url, second_url]) as database:
        await database.run(0, _insert_orders, seeded)
        return await _apply_with_writers(database, updates)


async def _apply_with_writers(database: Database, updates: list[OrderUpdate]) -> list[int]:
    writers = [ShardWriter(database, shard) for shard in range(database.shard_count)]
    async with trio.open_nursery() as nursery:
        for writer in writers:
            await nursery.start(writer.run)
        applier = UpdateApplier(database, writers, shard_deadline_seconds=SHARD_DEADLINE_SECONDS)
        results = await apply_items(applier, [BatchItem(update) for update in updates], "http")
        nursery.cancel_scope.cancel()
    return [result.status for result in results]


async def test_a_down_shard_fails_only_what_needs_it(settings: Settings, refused_port: int) -> None:
    """Shard 1 refuses connections. The found update on shard 0 is applied; the not-found one on
    shard 0 needs shard 1 to tell "not found" from "another user's order": 503, not a 500."""
    found, missing = users_on(0, 2)
    with trio.fail_after(60):
        statuses = await _apply(str(settings.database_urls[0]),
                                f"postgresql://postgres@127.0.0.1:{refused_port}/none", [found],
                                [order_update(f"o-{found}", found, "paid", at(1)),
                                 order_update("o-nowhere", missing, "paid", at(1))])
    assert statuses == [200, 503]


async def test_a_payment_link_on_a_down_shard_is_a_503_for_its_item_alone(settings: Settings,
                                                                            refused_port: int) -> None:
    plain, linked = users_on(0, 2)
    payment = next(p for p in (f"pi_{i}" for i in range(100)) if shard_for(p, 2) == 1)
    with trio.fail_after(60):
        statuses = await _apply(str(settings.database_urls[0]),
                                f"postgresql://postgres@127.0.0.1:{refused_port}/none", [plain, linked],
                                [order_update(f"o-{plain}", plain, "paid", at(1)),
                                 order_update(f"o-{linked}", linked, "paid", at(1), provider_payment_id=payment)])
    assert statuses == [200, 503]


async def test_a_hung_shard_is_a_503_for_its_items_within_the_deadline(settings: Settings, silent_port: int) -> None:
    """Without the shard deadline the whole batch waits for the hung shard (the database timeout,
    10 s; ingest's call times out first and every item of the batch fails)."""
    healthy, = users_on(0, 1)
    stuck, = users_on(1, 1)
    with trio.fail_after(SHARD_DEADLINE_SECONDS * 4):
        statuses = await _apply(str(settings.database_urls[0]),
                                f"postgresql://postgres@127.0.0.1:{silent_port}/none", [healthy],
                                [order_update(f"o-{healthy}", healthy, "paid", at(1)),
                                 order_update(f"o-{stuck}", stuck, "paid", at(1))])
    assert statuses == [200, 503]


@pytest.fixture
async def api_url(settings: Settings) -> AsyncIterator[str]:
    shutdown = trio.Event()
    async with trio_asyncio.open_loop() as loop, trio.open_nursery() as nursery:
        urls = await nursery.start(serve_api, settings.replace(api_port=0), loop, shutdown)
        yield urls[0]
        shutdown.set()


DEEP = b"[" * 5000 + b"]" * 5000


@pytest.mark.parametrize(("path", "body"), [
    ("/internal/updates/orders", b'{"x":' + DEEP + b"}"),
    ("/internal/updates/batch", b"[" + DEEP + b"]"),
    ("/internal/updates/batch", b'[{"order":{"x":' + DEEP + b"}}]"),
])
async def test_a_body_nested_too_deeply_is_refused_not_a_500(api_url: str, path: str, body: bytes) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        response = await client.post(path, content=body, headers={**INTERNAL, "Content-Type": "application/json"})
    assert response.status_code in (200, 400), response.text  # a batch answers per item
    if response.status_code == 200:
        assert [item["status"] for item in response.json()] == [400]
    else:
        assert "nested too deeply" in response.text
