"""Orders, disputes and their events in one shard: the asyncio side of ``Database.run``.

A batch of updates is applied in one transaction (one trio↔asyncio crossing):
lock the affected rows, read which events are already stored, let the pure rules
of ``shared.domain`` decide each event in order, then bulk-insert the events and
bulk-update the state. A single update is a batch of one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import asyncpg

from shared.domain import EntityState, Outcome, Plan, decide_dispute, decide_order, plan_batch
from shared.messages import DisputeUpdate, OrderUpdate, Update

# A concurrent writer (another process) can create the same dispute or deadlock us;
# the whole batch is then simply run again.
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.UniqueViolationError, asyncpg.SerializationError)
ATTEMPTS = 3
U = TypeVar("U", OrderUpdate, DisputeUpdate)


async def apply_batch(pool: asyncpg.Pool, updates: Sequence[Update], defer_after_not_found: bool = False
                      ) -> list[Outcome]:
    """Apply ``updates`` (in order) in one transaction; one outcome per update.

    With ``defer_after_not_found``, a user's events after one of theirs whose order or
    dispute is missing are not tried (``DEFERRED``, see ``plan_batch``): the caller
    retries them in order, and the rest of the batch is not held back.
    """
    for attempt in range(1, ATTEMPTS + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await _apply(conn, updates, defer_after_not_found)
        except _RETRYABLE:
            if attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")


async def _apply(conn: asyncpg.Connection, updates: Sequence[Update], defer: bool) -> list[Outcome]:
    """Orders, then disputes (a worker's batch is of one kind: one topic each)."""
    outcomes: list[Outcome | None] = [None] * len(updates)
    await _apply_kind(conn, updates, OrderUpdate, _apply_orders, defer, outcomes)
    await _apply_kind(conn, updates, DisputeUpdate, _apply_disputes, defer, outcomes)
    return cast(list[Outcome], outcomes)  # every slot is filled: an update is an order's or a dispute's


async def _apply_kind(conn: asyncpg.Connection, updates: Sequence[Update], kind: type[U],
                      apply: Callable[[asyncpg.Connection, list[U], bool], Awaitable[list[Outcome]]], defer: bool,
                      outcomes: list[Outcome | None]) -> None:
    """Fill in the outcomes of the updates of one ``kind``."""
    indexed = [(index, update) for index, update in enumerate(updates) if isinstance(update, kind)]
    if indexed:
        for (index, _), outcome in zip(indexed, await apply(conn, [u for _, u in indexed], defer), strict=True):
            outcomes[index] = outcome


# --- orders ---------------------------------------------------------------------------


async def _apply_orders(conn: asyncpg.Connection, events: list[OrderUpdate], defer: bool) -> list[Outcome]:
    ids = sorted({event.order_id for event in events})
    rows = await conn.fetch(
        "SELECT order_id, user_id, status, last_event_at FROM orders"
        " WHERE order_id = ANY($1::text[]) ORDER BY order_id FOR UPDATE", ids)
    states = {row["order_id"]: EntityState(row["order_id"], row["user_id"], row["status"], row["last_event_at"])
              for row in rows}
    stored = await conn.fetch(
        "SELECT e.order_id, e.provider_event_id FROM order_events e"
        " JOIN unnest($1::text[], $2::text[]) AS k(order_id, provider_event_id) USING (order_id, provider_event_id)",
        [e.order_id for e in events], [e.provider_event_id for e in events])
    plan = plan_batch(events, states, [(r[0], r[1]) for r in stored], lambda e: e.order_id, decide_order, defer)
    if plan.inserts:
        await _insert_order_events(conn, plan)
    if plan.states:
        await conn.execute(
            "UPDATE orders o SET status = u.status, last_event_at = u.last_event_at, updated_at = now()"
            " FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(order_id, status, last_event_at)"
            " WHERE o.order_id = u.order_id",
            list(plan.states), [s.status for s in plan.states.values()],
            [s.last_event_at for s in plan.states.values()])
    return plan.outcomes


async def _insert_order_events(conn: asyncpg.Connection, plan: Plan[OrderUpdate]) -> None:
    rows = [(e.order_id, e.provider_event_id, e.event_id, e.status, e.amount, e.currency, e.occurred_at,
             e.received_at, applied, e.correlation_id) for e, applied in plan.inserts]
    await conn.execute(
        "INSERT INTO order_events (order_id, provider_event_id, event_id, status, amount, currency,"
        " occurred_at, received_at, applied, correlation_id)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[],"
        " $7::timestamptz[], $8::timestamptz[], $9::bool[], $10::text[])", *_columns(rows))


# --- disputes -------------------------------------------------------------------------


async def _apply_disputes(conn: asyncpg.Connection, events: list[DisputeUpdate], defer: bool) -> list[Outcome]:
    ids = sorted({event.dispute_id for event in events})
    rows = await conn.fetch(
        "SELECT dispute_id, order_id, user_id, status, last_event_at FROM disputes"
        " WHERE dispute_id = ANY($1::text[]) ORDER BY dispute_id FOR UPDATE", ids)
    states = {r["dispute_id"]: EntityState(r["dispute_id"], r["user_id"], r["status"], r["last_event_at"],
                                           r["order_id"]) for r in rows}
    order_users = dict(await conn.fetch(
        "SELECT order_id, user_id FROM orders WHERE order_id = ANY($1::text[])",
        list({event.order_id for event in events})))
    stored = await conn.fetch(
        "SELECT e.dispute_id, e.provider_event_id FROM dispute_events e"
        " JOIN unnest($1::text[], $2::text[]) AS k(dispute_id, provider_event_id)"
        " USING (dispute_id, provider_event_id)",
        [e.dispute_id for e in events], [e.provider_event_id for e in events])
    plan = plan_batch(events, states, [(r[0], r[1]) for r in stored], lambda e: e.dispute_id,
                      lambda state, e: decide_dispute(state, e, order_users.get(e.order_id)), defer)
    if plan.states:
        await _save_disputes(conn, plan)
    if plan.inserts:
        await _insert_dispute_events(conn, plan)
    return plan.outcomes


async def _save_disputes(conn: asyncpg.Connection, plan: Plan[DisputeUpdate]) -> None:
    latest = {event.dispute_id: event for event, applied in plan.inserts if applied}

    def row(s: EntityState) -> tuple[Any, ...]:
        event = latest[s.entity_id]
        return s.entity_id, s.order_id, s.user_id, s.status, event.reason, event.amount, event.currency, s.last_event_at

    new = [row(s) for s in plan.states.values() if s.entity_id in plan.created]
    old = [row(s) for s in plan.states.values() if s.entity_id not in plan.created]
    if new:  # a dispute another writer created meanwhile raises UniqueViolation: the batch is retried
        await conn.execute(
            "INSERT INTO disputes (dispute_id, order_id, user_id, status, reason, amount, currency, last_event_at)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[],"
            " $7::text[], $8::timestamptz[])", *_columns(new))
    if old:
        await conn.execute(
            "UPDATE disputes d SET status = u.status, reason = u.reason, amount = u.amount, currency = u.currency,"
            " last_event_at = u.last_event_at, updated_at = now()"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::text[],"
            " $8::timestamptz[]) AS u(dispute_id, order_id, user_id, status, reason, amount, currency, last_event_at)"
            " WHERE d.dispute_id = u.dispute_id", *_columns(old))


def _columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows to per-column lists, the shape ``unnest($1::t[], ...)`` takes."""
    return [list(column) for column in zip(*rows, strict=True)]


async def _insert_dispute_events(conn: asyncpg.Connection, plan: Plan[DisputeUpdate]) -> None:
    rows = [(e.dispute_id, e.provider_event_id, e.event_id, e.status, e.reason, e.amount, e.currency,
             e.occurred_at, e.received_at, applied, e.correlation_id) for e, applied in plan.inserts]
    await conn.execute(
        "INSERT INTO dispute_events (dispute_id, provider_event_id, event_id, status, reason, amount, currency,"
        " occurred_at, received_at, applied, correlation_id)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[],"
        " $7::text[], $8::timestamptz[], $9::timestamptz[], $10::bool[], $11::text[])", *_columns(rows))


async def entity_exists(pool: asyncpg.Pool, update: Update) -> bool:
    """Whether this shard stores the update's dispute, or its order."""
    if isinstance(update, DisputeUpdate):
        return bool(await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM disputes WHERE dispute_id = $1)"
            " OR EXISTS (SELECT 1 FROM orders WHERE order_id = $2)", update.dispute_id, update.order_id))
    return bool(await pool.fetchval("SELECT EXISTS (SELECT 1 FROM orders WHERE order_id = $1)", update.order_id))
