"""The public endpoints, sharding by user, partitions, and the database going away."""

from __future__ import annotations

import datetime as dt

import asyncpg
import httpx
import trio
import trio_asyncio

from api.service import serve_api
from shared.migrations import migrate_dsn
from shared.settings import Settings
from shared.sharding import shard_for
from tests.api.updates import at, create_order, dispute_update, order_update, send
from tests.conftest import TEST_API_TOKEN
from webhooks.embedded import create_databases, dsn, free_port, open_pg_cluster, run_postgres


async def test_create_order_is_idempotent_with_a_key(client: httpx.AsyncClient) -> None:
    body = {"order_id": "o1", "user_id": "u1", "amount": 1999, "currency": "USD"}
    first = await client.post("/orders", json=body, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 201
    assert {k: first.json()[k] for k in body} | {"status": first.json()["status"]} == {**body, "status": "created"}
    again = await client.post("/orders", json=body, headers={"Idempotency-Key": "k1"})
    assert again.status_code == 200 and again.json() == first.json()
    assert (await client.post("/orders", json=body)).status_code == 409
    other_body = await client.post("/orders", json={**body, "amount": 1}, headers={"Idempotency-Key": "k1"})
    assert other_body.status_code == 409
    other_order = await client.post("/orders", json={**body, "order_id": "o2"}, headers={"Idempotency-Key": "k1"})
    assert other_order.status_code == 409 and "another order" in other_order.json()["detail"]
    bad = await client.post("/orders", json={**body, "amount": -1})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "amount"
    nul = await client.post("/orders", json={**body, "order_id": "a\u0000b"})  # PostgreSQL text cannot hold it
    assert nul.status_code == 400
    assert nul.json()["errors"] == [{"field": "order_id", "message": "must not contain control characters"}]


async def test_reads_need_a_token_and_say_not_found(client: httpx.AsyncClient, api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as anonymous:
        assert (await anonymous.get("/orders/x")).status_code == 401
        assert (await anonymous.post("/orders", json={})).status_code == 401
    missing = await client.get("/orders/missing")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert (await client.get("/disputes/missing")).status_code == 404
    assert (await client.get("/no/such/route")).status_code == 404
    for path in ("/orders/%00", "/disputes/%00", "/orders/a%01b", "/orders/" + "x" * 65, "/disputes/%ED%A0%80"):
        response = await client.get(path)  # ids no row can have: not found, the shards are not asked
        assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json", path


async def _count(url: str, table: str, user_id: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", user_id)
    finally:
        await conn.close()


async def test_every_row_of_a_user_lands_in_its_shard(client: httpx.AsyncClient, settings: Settings) -> None:
    users = [f"user-{i}" for i in range(12)]
    assert {shard_for(user, 2) for user in users} == {0, 1}  # both shards are exercised
    for user in users:
        await create_order(client, f"order-{user}", user)
        assert (await send(client, order_update(f"order-{user}", user, "paid", at(1)))).status_code == 200
        assert (await send(client, dispute_update(f"dispute-{user}", f"order-{user}", user, "opened", at(2)))
                ).status_code == 200
    async with trio_asyncio.open_loop() as loop:
        for user in users:
            home = shard_for(user, 2)
            for shard, url in enumerate(settings.database_urls):
                expected = 1 if shard == home else 0
                for table in ("orders", "disputes"):
                    assert await loop.run_aio_coroutine(_count(url, table, user)) == expected
    # and the public reads find each one on whichever shard holds it
    for user in users:
        assert (await client.get(f"/orders/order-{user}")).json()["user_id"] == user
        assert (await client.get(f"/disputes/dispute-{user}")).json()["order_id"] == f"order-{user}"


async def _partition_of(url: str, dispute_id: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(
            "SELECT tableoid::regclass::text FROM dispute_events WHERE dispute_id = $1", dispute_id)
    finally:
        await conn.close()


async def test_a_dispute_event_without_a_monthly_partition_lands_in_the_default(
        client: httpx.AsyncClient, settings: Settings) -> None:
    await create_order(client, "o-far", "u-far")
    far_future = dt.datetime(2035, 3, 1, tzinfo=dt.UTC)
    assert (await send(client, dispute_update("d-far", "o-far", "u-far", "opened", far_future))).status_code == 200
    now = dt.datetime.now(dt.UTC)
    assert (await send(client, dispute_update("d-now", "o-far", "u-far", "opened", now))).status_code == 200
    url = settings.database_urls[shard_for("u-far", 2)]
    async with trio_asyncio.open_loop() as loop:
        assert await loop.run_aio_coroutine(_partition_of(url, "d-far")) == "dispute_events_default"
        assert await loop.run_aio_coroutine(_partition_of(url, "d-now")) == f"dispute_events_{now:%Y_%m}"


async def test_database_down_gives_503_and_service_resumes(settings: Settings) -> None:
    """A server of our own, stopped and started under the running api."""
    port = free_port()
    with trio.fail_after(90):
        async with open_pg_cluster() as cluster, trio_asyncio.open_loop() as loop:
            async with run_postgres(cluster, port):
                await create_databases(port, ["shard"])
                url = dsn(port, "shard")
                await loop.run_aio_coroutine(migrate_dsn(url, dt.date.today()))
            own = settings.replace(database_urls=(url,), api_port=0)
            shutdown = trio.Event()
            async with trio.open_nursery() as nursery:
                api_url = (await nursery.start(serve_api, own, loop, shutdown))[0]
                async with httpx.AsyncClient(base_url=api_url, timeout=30,
                                             headers={"Authorization": f"Bearer {TEST_API_TOKEN}"}) as client:
                    down = await send(client, order_update("o1", "u1", "paid", at(1)))
                    assert down.status_code == 503 and down.headers["retry-after"] == "1"
                    assert (await client.get("/readyz")).status_code == 503
                    assert (await client.post("/orders", json={"order_id": "o1", "user_id": "u1", "amount": 1,
                                                               "currency": "EUR"})).status_code == 503
                    async with run_postgres(cluster, port):
                        await create_order(client, "o1", "u1")
                        assert (await send(client, order_update("o1", "u1", "paid", at(1)))).status_code == 200
                        assert (await client.get("/readyz")).status_code == 200
                shutdown.set()
