"""Orders, disputes and their events in one shard: the asyncio side of ``Database.run``.

A batch of updates is applied in one transaction (one trio↔asyncio crossing) of five round
trips — BEGIN, lock, read, write, COMMIT — whatever it holds, since every round trip costs the
process a loopback exchange through the asyncio bridge (~0.13 ms of CPU, twice plain asyncio's;
a mixed batch took 12-13 when each kind had its own statements and asyncpg reset the connection):

- ONE statement locks the orders the batch names (``FOR UPDATE``, in id order) — those of its
  order events *and of its dispute events*: every writer of a dispute first holds its order;
- ONE statement then locks the batch's disputes (they cannot be held by another writer now) and
  reads the events already stored. It must be a statement of its own: a row a locking statement
  had to wait for comes back as its latest version, but everything else that statement reads is
  as of its start, so an event (or a new dispute) stored by the writer we waited for would be
  missed — a redelivery judged against the state it produced (422 instead of duplicate), or
  overlapping batches retried until they give up;
- the pure rules of ``shared.domain`` decide each event in order (orders and disputes planned
  apart: a worker's batch is of one kind, a topic each);
- ONE statement writes the plan: events, order states, new and changed disputes.

A single update is a batch of one. A unique key still guards every event and dispute: a writer
that raced us anyway (an event naming another order than its dispute's) makes the insert raise
``UniqueViolation`` and the batch is run again; new disputes and their events are written in id
order, so two such writers do not deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from shared.domain import EntityState, Outcome, Plan, decide_dispute, decide_order, plan_batch
from shared.messages import DisputeUpdate, OrderUpdate, Update

# A concurrent writer (another process) can store the same event or dispute, or deadlock us;
# the whole batch is then simply run again.
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.UniqueViolationError, asyncpg.SerializationError)
ATTEMPTS = 3

# The orders the batch names, locked in id order (their users: a new dispute must be its order's user's).
_LOCK_ORDERS = (
    "SELECT 'order' AS kind, order_id AS key, NULL AS ref, user_id, status, last_event_at FROM orders"
    " WHERE order_id = ANY($1::text[]) ORDER BY order_id FOR UPDATE")
# Once the orders are held: the disputes, locked in id order (``ref``: its order), and the events
# already stored (``ref``: the provider's event id).
_LOCK_DISPUTES_AND_READ = (
    "WITH locked AS ("
    "  SELECT dispute_id, order_id, user_id, status, last_event_at FROM disputes"
    "  WHERE dispute_id = ANY($1::text[]) ORDER BY dispute_id FOR UPDATE)"
    " SELECT 'dispute' AS kind, dispute_id AS key, order_id AS ref, user_id, status, last_event_at FROM locked"
    " UNION ALL SELECT 'order_event', e.order_id, e.provider_event_id, NULL, NULL, NULL FROM order_events e"
    "  JOIN unnest($2::text[], $3::text[]) AS k(order_id, provider_event_id) USING (order_id, provider_event_id)"
    " UNION ALL SELECT 'dispute_event', e.dispute_id, e.provider_event_id, NULL, NULL, NULL FROM dispute_events e"
    "  JOIN unnest($4::text[], $5::text[]) AS k(dispute_id, provider_event_id) USING (dispute_id, provider_event_id)")

# Everything a batch's plan changes, in one statement (a dispute another writer created meanwhile
# raises UniqueViolation, as does an event another writer stored: the batch is run again).
_WRITE = (
    "WITH order_events_added AS ("
    "  INSERT INTO order_events (order_id, provider_event_id, event_id, status, amount, currency,"
    "  occurred_at, received_at, applied, correlation_id)"
    "  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[],"
    "  $7::timestamptz[], $8::timestamptz[], $9::bool[], $10::text[])),"
    " orders_changed AS ("
    "  UPDATE orders o SET status = u.status, last_event_at = u.last_event_at, updated_at = now()"
    "  FROM unnest($11::text[], $12::text[], $13::timestamptz[]) AS u(order_id, status, last_event_at)"
    "  WHERE o.order_id = u.order_id),"
    " disputes_created AS ("
    "  INSERT INTO disputes (dispute_id, order_id, user_id, status, reason, amount, currency, last_event_at)"
    "  SELECT * FROM unnest($14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::int8[],"
    "  $20::text[], $21::timestamptz[])),"
    " disputes_changed AS ("
    "  UPDATE disputes d SET status = u.status, reason = u.reason, amount = u.amount, currency = u.currency,"
    "  last_event_at = u.last_event_at, updated_at = now()"
    "  FROM unnest($22::text[], $23::text[], $24::text[], $25::text[], $26::text[], $27::int8[], $28::text[],"
    "  $29::timestamptz[]) AS u(dispute_id, order_id, user_id, status, reason, amount, currency, last_event_at)"
    "  WHERE d.dispute_id = u.dispute_id)"
    " INSERT INTO dispute_events (dispute_id, provider_event_id, event_id, status, reason, amount, currency,"
    " occurred_at, received_at, applied, correlation_id)"
    " SELECT * FROM unnest($30::text[], $31::text[], $32::text[], $33::text[], $34::text[], $35::int8[],"
    " $36::text[], $37::timestamptz[], $38::timestamptz[], $39::bool[], $40::text[])")


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


@dataclass
class _Stored:
    """What the lock and the read found, by kind of row."""

    orders: dict[str, EntityState] = field(default_factory=dict)
    order_events: list[tuple[str, str]] = field(default_factory=list)
    disputes: dict[str, EntityState] = field(default_factory=dict)
    dispute_events: list[tuple[str, str]] = field(default_factory=list)

    def add(self, row: asyncpg.Record) -> None:
        kind, key, ref = row["kind"], row["key"], row["ref"]
        if kind == "order":
            self.orders[key] = EntityState(key, row["user_id"], row["status"], row["last_event_at"])
        elif kind == "dispute":
            self.disputes[key] = EntityState(key, row["user_id"], row["status"], row["last_event_at"], ref)
        elif kind == "order_event":
            self.order_events.append((key, ref))
        else:
            self.dispute_events.append((key, ref))

    def order_user(self, order_id: str) -> str | None:
        order = self.orders.get(order_id)
        return order.user_id if order else None


async def _apply(conn: asyncpg.Connection, updates: Sequence[Update], defer: bool) -> list[Outcome]:
    orders = [u for u in updates if isinstance(u, OrderUpdate)]
    disputes = [u for u in updates if isinstance(u, DisputeUpdate)]
    stored = _Stored()
    for row in await conn.fetch(_LOCK_ORDERS, sorted({e.order_id for e in updates})):
        stored.add(row)
    for row in await conn.fetch(_LOCK_DISPUTES_AND_READ, sorted({e.dispute_id for e in disputes}),
                                [e.order_id for e in orders], [e.provider_event_id for e in orders],
                                [e.dispute_id for e in disputes], [e.provider_event_id for e in disputes]):
        stored.add(row)
    order_plan = plan_batch(orders, stored.orders, stored.order_events, lambda e: e.order_id, decide_order, defer)
    dispute_plan = plan_batch(disputes, stored.disputes, stored.dispute_events, lambda e: e.dispute_id,
                              lambda state, e: decide_dispute(state, e, stored.order_user(e.order_id)), defer)
    if order_plan.inserts or order_plan.states or dispute_plan.inserts or dispute_plan.states:
        await conn.execute(_WRITE, *_order_columns(order_plan), *_dispute_columns(dispute_plan))
    order_outcomes, dispute_outcomes = iter(order_plan.outcomes), iter(dispute_plan.outcomes)
    return [next(order_outcomes) if isinstance(u, OrderUpdate) else next(dispute_outcomes) for u in updates]


def _order_columns(plan: Plan[OrderUpdate]) -> list[list[Any]]:
    """The events to insert, then the orders' new states: ``_WRITE``'s $1..$13."""
    events = [(e.order_id, e.provider_event_id, e.event_id, e.status, e.amount, e.currency, e.occurred_at,
               e.received_at, applied, e.correlation_id) for e, applied in plan.inserts]
    states = [(s.entity_id, s.status, s.last_event_at) for s in plan.states.values()]
    return [*_columns(events, 10), *_columns(states, 3)]


def _dispute_columns(plan: Plan[DisputeUpdate]) -> list[list[Any]]:
    """The disputes to create and to update (their final state, with their last applied event's
    details), then the events to insert: ``_WRITE``'s $14..$40. In id order: two writers creating
    the same new disputes take their keys' locks in the same order (a deadlock costs a second)."""
    latest = {event.dispute_id: event for event, applied in plan.inserts if applied}

    def row(s: EntityState) -> tuple[Any, ...]:
        event = latest[s.entity_id]
        return s.entity_id, s.order_id, s.user_id, s.status, event.reason, event.amount, event.currency, s.last_event_at

    new = sorted(row(s) for s in plan.states.values() if s.entity_id in plan.created)
    old = [row(s) for s in plan.states.values() if s.entity_id not in plan.created]
    events = sorted((e.dispute_id, e.provider_event_id, e.event_id, e.status, e.reason, e.amount, e.currency,
                     e.occurred_at, e.received_at, applied, e.correlation_id) for e, applied in plan.inserts)
    return [*_columns(new, 8), *_columns(old, 8), *_columns(events, 11)]


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows to per-column lists, the shape ``unnest($1::t[], ...)`` takes (``width`` empty lists for no rows)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


async def entity_exists(pool: asyncpg.Pool, update: Update) -> bool:
    """Whether this shard stores the update's dispute, or its order."""
    if isinstance(update, DisputeUpdate):
        return bool(await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM disputes WHERE dispute_id = $1)"
            " OR EXISTS (SELECT 1 FROM orders WHERE order_id = $2)", update.dispute_id, update.order_id))
    return bool(await pool.fetchval("SELECT EXISTS (SELECT 1 FROM orders WHERE order_id = $1)", update.order_id))
