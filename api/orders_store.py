"""The api's public reads, and order creation with order ids unique across shards.

The reads and each step of a create are asyncio functions run through ``Database.run`` (one
shard each); ``create_order`` sequences a create over two shards, with no transaction spanning
them:

1. **claim** the order id in the registry (``order_ids``) on ``shard_for(order_id)``: its primary
   key picks one claim per id, however many creates race and on whichever shards their users live;
2. **complete** the claim: insert the claim's order on ``shard_for(claim.user_id)`` unless it is
   there already (completing twice is harmless);
3. **judge** the request against the claim and the stored order (pure): another user's claim is
   409; the claim this request made is 201; otherwise the Idempotency-Key rules (200 or 409).

A crash between 1 and 2 leaves a claim without its order. The claim carries the whole request,
so the next create of that id completes it in step 2: the claimant's retry (same key: 200 and the
order) or another user's create (409: the id was taken when the claim committed). A claim that can
never complete — its key already names another order on that shard, and keys are never freed —
is deleted by whoever finds so, and that create claims again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from shared.database import Database
from shared.errors import Conflict, Unavailable
from shared.logs import get_logger
from shared.messages import Amount, Currency, Id
from shared.sharding import shard_for

log = get_logger(__name__)


class NewOrder(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /orders``."""

    order_id: Id
    user_id: Id
    amount: Amount
    currency: Currency


@dataclass(frozen=True)
class Claim:
    """One create's claim on an order id: the whole request, so anyone can complete it."""

    claim_id: uuid.UUID
    order_id: str
    user_id: str
    amount: int
    currency: str
    idempotency_key: str | None

    @classmethod
    def for_request(cls, order: NewOrder, idempotency_key: str | None) -> Claim:
        return cls(uuid.uuid4(), order.order_id, order.user_id, order.amount, order.currency, idempotency_key)

    def values(self) -> tuple[object, ...]:
        return (self.claim_id, self.order_id, self.user_id, self.amount, self.currency, self.idempotency_key)


_ORDER_COLUMNS = "order_id, user_id, status, amount, currency, created_at, updated_at"
_DISPUTE_COLUMNS = "dispute_id, order_id, user_id, status, reason, amount, currency, created_at, updated_at"
_EVENT_COLUMNS = "provider_event_id, status, occurred_at, received_at, applied"
_CLAIM_COLUMNS = "claim_id, order_id, user_id, amount, currency, idempotency_key"
_CLAIM_ATTEMPTS = 3  # a claim that can never complete is deleted, then the id is claimed again


async def create_order(database: Database, order: NewOrder, idempotency_key: str | None) -> tuple[dict[str, Any], bool]:
    """Create ``order`` unless its id is taken on any shard; returns (order, created)."""
    ours = Claim.for_request(order, idempotency_key)
    registry = registry_shard(order.order_id, database.shard_count)
    home = shard_for(order.user_id, database.shard_count)
    if idempotency_key is not None and await database.run(home, key_names_another_order, ours):
        # checked before claiming: a claim that could never complete would turn racing creates of
        # the id away (503) until it is found and released
        raise Conflict("Idempotency-Key was already used for another order")
    for _ in range(_CLAIM_ATTEMPTS):
        claim = await database.run(registry, claim_order_id, ours)
        stored, inserted = await database.run(shard_for(claim.user_id, database.shard_count), complete_claim, claim)
        if inserted and claim.claim_id != ours.claim_id:
            log.info("completed another create's claim", order_id=claim.order_id, claimant=claim.user_id)
        if stored is not None:
            return judge(ours, claim, stored)
        await database.run(registry, release_claim, claim)
        if claim.claim_id == ours.claim_id:
            raise Conflict("Idempotency-Key was already used for another order")
    raise Unavailable(f"order {order.order_id} is being claimed by several creates; retry")


def registry_shard(order_id: str, shard_count: int) -> int:
    """The shard whose ``order_ids`` holds ``order_id``'s claim."""
    return shard_for(order_id, shard_count)


def judge(ours: Claim, claim: Claim, stored: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The answer to the request behind ``ours``, given the id's ``claim`` and its stored order."""
    if claim.user_id != ours.user_id:
        raise Conflict(f"order {ours.order_id} already exists")
    order = dict(stored)
    stored_key, stored_claim = order.pop("idempotency_key"), order.pop("claim_id")
    if claim.claim_id == ours.claim_id == stored_claim:
        return order, True
    if ours.idempotency_key is None or stored_key != ours.idempotency_key:
        raise Conflict(f"order {ours.order_id} already exists")
    if (order["user_id"], order["amount"], order["currency"]) != (ours.user_id, ours.amount, ours.currency):
        raise Conflict("Idempotency-Key was already used with a different request body")
    return order, False


async def claim_order_id(pool: asyncpg.Pool, claim: Claim) -> Claim:
    """The id's claim: ``claim`` if it is the first, else the one before it (a racing claim is waited for)."""
    row = await pool.fetchrow(
        f"INSERT INTO order_ids ({_CLAIM_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        # a no-op update, so that the statement returns the claim that was there
        f" ON CONFLICT (order_id) DO UPDATE SET order_id = EXCLUDED.order_id RETURNING {_CLAIM_COLUMNS}",
        *claim.values())
    return Claim(**dict(row))


async def complete_claim(pool: asyncpg.Pool, claim: Claim) -> tuple[dict[str, Any] | None, bool]:
    """Insert the claim's order unless its id is there; returns (stored order, inserted now).
    The order is None when the claim's key already names another order on this shard."""
    columns = f"{_ORDER_COLUMNS}, idempotency_key, claim_id"
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "INSERT INTO orders (claim_id, order_id, user_id, amount, currency, idempotency_key, status)"
            f" VALUES ($1, $2, $3, $4, $5, $6, 'created') ON CONFLICT DO NOTHING RETURNING {columns}",
            *claim.values())
        if row is not None:
            return dict(row), True
        row = await conn.fetchrow(f"SELECT {columns} FROM orders WHERE order_id = $1", claim.order_id)
    return (None if row is None else dict(row)), False


async def key_names_another_order(pool: asyncpg.Pool, claim: Claim) -> bool:
    """Whether the claim's Idempotency-Key is already stored with another order id on this shard."""
    return bool(await pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM orders WHERE idempotency_key = $1 AND order_id <> $2)",
        claim.idempotency_key, claim.order_id))


async def release_claim(pool: asyncpg.Pool, claim: Claim) -> None:
    """Delete ``claim`` (not a later claim of its id): its order can never be inserted."""
    await pool.execute("DELETE FROM order_ids WHERE order_id = $1 AND claim_id = $2", claim.order_id, claim.claim_id)


async def get_order(pool: asyncpg.Pool, order_id: str) -> dict[str, Any] | None:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(f"SELECT {_ORDER_COLUMNS} FROM orders WHERE order_id = $1", order_id)
        if row is None:
            return None
        events = await conn.fetch(
            f"SELECT {_EVENT_COLUMNS} FROM order_events WHERE order_id = $1 ORDER BY occurred_at, id", order_id)
    return {**dict(row), "events": [dict(event) for event in events]}


async def get_dispute(pool: asyncpg.Pool, dispute_id: str) -> dict[str, Any] | None:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(f"SELECT {_DISPUTE_COLUMNS} FROM disputes WHERE dispute_id = $1", dispute_id)
        if row is None:
            return None
        events = await conn.fetch(
            f"SELECT {_EVENT_COLUMNS} FROM dispute_events WHERE dispute_id = $1 ORDER BY occurred_at, received_at",
            dispute_id)
    return {**dict(row), "events": [dict(event) for event in events]}
