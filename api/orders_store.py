"""The api's public reads and order creation: asyncio functions run through ``Database.run``."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from shared.errors import Conflict
from shared.messages import Amount, Currency, Id


class NewOrder(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /orders``."""

    order_id: Id
    user_id: Id
    amount: Amount
    currency: Currency


_ORDER_COLUMNS = "order_id, user_id, status, amount, currency, created_at, updated_at"
_DISPUTE_COLUMNS = "dispute_id, order_id, user_id, status, reason, amount, currency, created_at, updated_at"
_EVENT_COLUMNS = "provider_event_id, status, occurred_at, received_at, applied"


async def create_order(pool: asyncpg.Pool, order: NewOrder, idempotency_key: str | None) -> tuple[dict[str, Any], bool]:
    """Insert ``order``; returns (order, created). A retry with the same key returns the stored order."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "INSERT INTO orders (order_id, user_id, status, amount, currency, idempotency_key)"
            f" VALUES ($1, $2, 'created', $3, $4, $5) ON CONFLICT DO NOTHING RETURNING {_ORDER_COLUMNS}",
            order.order_id, order.user_id, order.amount, order.currency, idempotency_key)
        if row is not None:
            return dict(row), True
        existing = await conn.fetchrow(
            f"SELECT {_ORDER_COLUMNS}, idempotency_key FROM orders WHERE order_id = $1", order.order_id)
    if existing is None:  # the conflict was on the key
        raise Conflict("Idempotency-Key was already used for another order")
    stored = dict(existing)
    if idempotency_key is None or stored.pop("idempotency_key") != idempotency_key:
        raise Conflict(f"order {order.order_id} already exists")
    if (stored["user_id"], stored["amount"], stored["currency"]) != (order.user_id, order.amount, order.currency):
        raise Conflict("Idempotency-Key was already used with a different request body")
    return stored, False


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
