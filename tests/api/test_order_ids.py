"""Order ids are unique across shards: the order-id registry, racing creates, and creates that stopped
after their claim (SPEC §4, issue 12 item 5). Two real shards; users picked to live on each."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest
import trio
import trio_asyncio

from api.orders_store import Claim, NewOrder, claim_order_id, judge, registry_shard
from shared.errors import Conflict
from shared.settings import Settings
from shared.sharding import shard_for

USERS = {0: [f"user-{i}" for i in range(40) if shard_for(f"user-{i}", 2) == 0],
         1: [f"user-{i}" for i in range(40) if shard_for(f"user-{i}", 2) == 1]}
ORDER_IDS = {0: [f"order-{i}" for i in range(40) if shard_for(f"order-{i}", 2) == 0],
             1: [f"order-{i}" for i in range(40) if shard_for(f"order-{i}", 2) == 1]}


def request(user_id: str = "u", key: str | None = "k", amount: int = 1000) -> Claim:
    return Claim.for_request(NewOrder(order_id="o", user_id=user_id, amount=amount, currency="EUR"), key)


def row_of(claim: Claim) -> dict[str, Any]:
    return {"order_id": claim.order_id, "user_id": claim.user_id, "status": "created", "amount": claim.amount,
            "currency": claim.currency, "idempotency_key": claim.idempotency_key, "claim_id": claim.claim_id}


FIRST = request()
JUDGEMENTS = [  # (request, the id's claim, the claim whose order is stored) → 201, 200 or the 409's detail
    (FIRST, FIRST, FIRST, 201),
    (request(), FIRST, FIRST, 200),  # a retry, or a twin of the first request
    (request(key=None), FIRST, FIRST, "order o already exists"),
    (request(key="other"), FIRST, FIRST, "order o already exists"),
    (request(amount=1), FIRST, FIRST, "Idempotency-Key was already used with a different request body"),
    (request(user_id="v"), FIRST, FIRST, "order o already exists"),
    (request(user_id="v", key=None), FIRST, FIRST, "order o already exists"),
    (FIRST, FIRST, request(), 200),  # an order stored for another claim (or before the registry), same key and body
]


@pytest.mark.parametrize(("ours", "claim", "stored", "expected"), JUDGEMENTS)
def test_judge(ours: Claim, claim: Claim, stored: Claim, expected: int | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(Conflict, match=expected):
            judge(ours, claim, row_of(stored))
    else:
        order, created = judge(ours, claim, row_of(stored))
        assert (201 if created else 200) == expected and "claim_id" not in order and "idempotency_key" not in order


def body(order_id: str, user_id: str, amount: int = 1000) -> dict[str, Any]:
    return {"order_id": order_id, "user_id": user_id, "amount": amount, "currency": "EUR"}


async def _fetch(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def holders(settings: Settings, order_id: str) -> list[str]:
    """The user of every row with ``order_id``, across all shards."""
    async with trio_asyncio.open_loop() as loop:
        users = []
        for url in settings.database_urls:
            rows = await loop.run_aio_coroutine(_fetch(url, "SELECT user_id FROM orders WHERE order_id = $1", order_id))
            users += [row["user_id"] for row in rows]
        return users


async def _claim(url: str, claim: Claim) -> Claim:
    async with asyncpg.create_pool(url, min_size=1, max_size=1) as pool:
        return await claim_order_id(pool, claim)


async def stop_after_claim(settings: Settings, order_id: str, user_id: str, key: str | None) -> None:
    """What a create leaves behind when its process dies between the claim and the insert."""
    claim = Claim.for_request(NewOrder(order_id=order_id, user_id=user_id, amount=1000, currency="EUR"), key)
    url = settings.database_urls[registry_shard(order_id, 2)]
    async with trio_asyncio.open_loop() as loop:
        assert await loop.run_aio_coroutine(_claim(url, claim)) == claim


@pytest.mark.parametrize("registry", [0, 1], ids=["registry-on-first-users-shard", "registry-on-second-users-shard"])
async def test_an_order_id_of_a_user_on_another_shard_is_409(
        client: httpx.AsyncClient, settings: Settings, registry: int) -> None:
    first, second = USERS[0][0], USERS[1][0]
    order_id = ORDER_IDS[registry][0]
    with trio.fail_after(60):
        created = await client.post("/orders", json=body(order_id, first), headers={"Idempotency-Key": "k1"})
        assert created.status_code == 201
        taken = await client.post("/orders", json=body(order_id, second))
        assert taken.status_code == 409 and taken.json()["detail"] == f"order {order_id} already exists"
        same_key = await client.post("/orders", json=body(order_id, second), headers={"Idempotency-Key": "k1"})
        assert same_key.status_code == 409
        retry = await client.post("/orders", json=body(order_id, first), headers={"Idempotency-Key": "k1"})
        assert retry.status_code == 200 and retry.json() == created.json()
        assert (await client.get(f"/orders/{order_id}")).json() == {**created.json(), "events": []}
        assert await holders(settings, order_id) == [first]
        # the second user's own orders are not affected
        assert (await client.post("/orders", json=body("other-" + order_id, second))).status_code == 201


async def test_racing_creates_of_one_order_id_by_users_on_both_shards(
        client: httpx.AsyncClient, settings: Settings) -> None:
    users = USERS[0][:6] + USERS[1][:6]
    twins = 3  # the first user also sends its request several times at once, with one key

    async def create(order_id: str, user: str, answers: list[tuple[str, int]]) -> None:
        response = await client.post("/orders", json=body(order_id, user), headers={"Idempotency-Key": user})
        answers.append((user, response.status_code))

    for order_id in ORDER_IDS[0][:3] + ORDER_IDS[1][:3]:
        answers: list[tuple[str, int]] = []
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for user in users + [users[0]] * (twins - 1):
                    nursery.start_soon(create, order_id, user, answers)
            winners = [user for user, status in answers if status == 201]
            assert len(winners) == 1, answers
            winner = winners[0]
            expected = sorted([(winner, 201)] + [(winner, 200)] * (twins - 1 if winner == users[0] else 0)
                              + [(user, 409) for user, _ in answers if user != winner])
            assert sorted(answers) == expected
            assert await holders(settings, order_id) == [winner]
            found = await client.get(f"/orders/{order_id}")
            assert found.status_code == 200 and found.json()["user_id"] == winner
            retry = await client.post("/orders", json=body(order_id, winner), headers={"Idempotency-Key": winner})
            assert retry.status_code == 200 and retry.json()["user_id"] == winner


@pytest.mark.parametrize("registry", [0, 1], ids=["registry-on-claimants-shard", "registry-on-other-shard"])
async def test_an_idempotent_retry_completes_a_create_that_stopped_after_its_claim(
        client: httpx.AsyncClient, settings: Settings, registry: int) -> None:
    user, order_id = USERS[0][0], ORDER_IDS[registry][0]
    with trio.fail_after(60):
        await stop_after_claim(settings, order_id, user, "k1")
        assert (await client.get(f"/orders/{order_id}")).status_code == 404
        retry = await client.post("/orders", json=body(order_id, user), headers={"Idempotency-Key": "k1"})
        assert retry.status_code == 200 and retry.json()["user_id"] == user and retry.json()["status"] == "created"
        again = await client.post("/orders", json=body(order_id, user), headers={"Idempotency-Key": "k1"})
        assert again.status_code == 200 and again.json() == retry.json()
        assert (await client.post("/orders", json=body(order_id, user))).status_code == 409  # without the key
        assert (await client.get(f"/orders/{order_id}")).json()["user_id"] == user
        assert await holders(settings, order_id) == [user]


async def test_another_users_create_completes_a_stopped_claim_and_is_409(
        client: httpx.AsyncClient, settings: Settings) -> None:
    claimant, other, order_id = USERS[0][0], USERS[1][0], ORDER_IDS[1][0]
    with trio.fail_after(60):
        await stop_after_claim(settings, order_id, claimant, "k1")
        taken = await client.post("/orders", json=body(order_id, other))
        assert taken.status_code == 409
        assert (await client.get(f"/orders/{order_id}")).json()["user_id"] == claimant  # the claim took the id
        assert await holders(settings, order_id) == [claimant]
        retry = await client.post("/orders", json=body(order_id, claimant), headers={"Idempotency-Key": "k1"})
        assert retry.status_code == 200 and retry.json()["user_id"] == claimant


async def test_a_claim_that_can_never_complete_does_not_block_its_order_id(
        client: httpx.AsyncClient, settings: Settings) -> None:
    claimant, other, order_id = USERS[0][0], USERS[1][0], ORDER_IDS[0][0]
    with trio.fail_after(60):
        await stop_after_claim(settings, order_id, claimant, "k1")
        # meanwhile the claimant's key went to another of its orders: the claim can never be inserted
        assert (await client.post("/orders", json=body("another", claimant),
                                  headers={"Idempotency-Key": "k1"})).status_code == 201
        created = await client.post("/orders", json=body(order_id, other))
        assert created.status_code == 201 and created.json()["user_id"] == other
        assert await holders(settings, order_id) == [other]
        assert (await client.post("/orders", json=body(order_id, claimant),
                                  headers={"Idempotency-Key": "k1"})).status_code == 409
