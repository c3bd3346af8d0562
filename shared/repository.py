"""Orders, disputes and their events in one shard: the asyncio side of ``Database.run``.

Every round trip costs the process a loopback exchange through the asyncio bridge, so a batch
of updates is applied in as few as it can be (one trio↔asyncio crossing in all):

**Two round trips, no transaction, when no other writer touches the batch's rows** (nearly
always: one api process writes a shard through one writer actor, and a partition's users have
one worker). ONE statement reads the orders and disputes the batch names, with their row
versions (``xmin``), and the events already stored — one snapshot, so all of it is consistent;
the pure rules of ``shared.domain`` decide each event in order; ONE statement writes the plan,
each order and dispute only if its row is still the version read (its events are inserted only
with it, in the batch's order), and says which it wrote. That statement is atomic, and takes the
orders it writes, and those of the disputes it writes, in id order first, as the locked path
does (no deadlock between them). An entity it did not write was changed by another writer
meanwhile: its events are decided again the locked way below — their outcomes as of the read
are dropped, the others stand. So is every entity with a refusal that a writer not yet committed
may be about to make wrong (``_unconfirmed``): a refusal stores nothing, so no row version can
confirm it. Every entity
whose events are stored here gets a new row version, also when its state does not change (a
stale event).

**Five round trips, locked, for the rows another writer changed** (and for the whole batch if the
statement above lost a race on a unique key or deadlocked: then it wrote nothing) — BEGIN,
lock, read, write, COMMIT:

- ONE statement locks the orders the batch names (``FOR UPDATE``, in id order) — those of its
  order events *and of its dispute events*: every locked writer of a dispute first holds its order;
- ONE statement then locks the batch's disputes and reads the events already stored. It must be a
  statement of its own: a row a locking statement had to wait for comes back as its latest
  version, but everything else that statement reads is as of its start, so an event (or a new
  dispute) stored by the writer we waited for would be missed — a redelivery judged against the
  state it produced (422 instead of duplicate), or overlapping batches retried until they give up;
- the rules decide (orders and disputes planned apart: a worker's batch is of one kind, a topic
  each); ONE statement writes the plan.

A single update is a batch of one. A unique key still guards every event and dispute: a locked
writer that raced another anyway (an event naming another order than its dispute's) makes the
insert raise ``UniqueViolation`` and the batch is run again; new disputes and their events are
written in id order, so two such writers do not deadlock.
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

# Everything the batch names, with each order's and dispute's row version: one statement, one snapshot.
_READ = (
    "SELECT 'order' AS kind, order_id AS key, NULL AS ref, user_id, status, last_event_at, xmin::text AS version"
    " FROM orders WHERE order_id = ANY($1::text[])"
    " UNION ALL SELECT 'dispute', dispute_id, order_id, user_id, status, last_event_at, xmin::text FROM disputes"
    "  WHERE dispute_id = ANY($2::text[])"
    " UNION ALL SELECT 'order_event', e.order_id, e.provider_event_id, NULL, NULL, NULL, NULL FROM order_events e"
    "  JOIN unnest($3::text[], $4::text[]) AS k(order_id, provider_event_id) USING (order_id, provider_event_id)"
    " UNION ALL SELECT 'dispute_event', e.dispute_id, e.provider_event_id, NULL, NULL, NULL, NULL FROM dispute_events e"
    "  JOIN unnest($5::text[], $6::text[]) AS k(dispute_id, provider_event_id) USING (dispute_id, provider_event_id)")

# The plan, for each order and dispute only if its row is still the version read (a new dispute: if
# nobody created it meanwhile), its events only with it, each dispute's in the batch's order;
# answers the orders and disputes written. The events of entities it does not write are sent too
# (and left out here), so that data PostgreSQL refuses is refused before anything is stored. First,
# as the locked path does, it takes the orders it writes and the orders of the disputes it writes
# (``$43``) in id order — ``NO KEY UPDATE``, which a dispute's foreign-key check on its order does
# not wait for — so that no writer waits for a row another holds while that one waits for a row it
# holds (a deadlock: a second lost). ``locked`` is read whole by the first branch of the answer,
# before any other part of the statement runs. Disputes whose state did not change (a stale event)
# get NULL details and keep theirs.
_WRITE_UNLESS_CHANGED = (
    "WITH locked AS MATERIALIZED ("
    "  SELECT order_id FROM orders WHERE order_id = ANY($43::text[]) ORDER BY order_id FOR NO KEY UPDATE),"
    " orders_written AS ("
    "  UPDATE orders o SET status = u.status, last_event_at = u.last_event_at, updated_at = now()"
    "  FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[])"
    "  AS u(order_id, status, last_event_at, version)"
    "  WHERE o.order_id = u.order_id AND o.xmin = u.version::xid RETURNING o.order_id),"
    " order_events_added AS ("
    "  INSERT INTO order_events (order_id, provider_event_id, event_id, status, amount, currency,"
    "  occurred_at, received_at, applied, correlation_id)"
    "  SELECT order_id, provider_event_id, event_id, status, amount, currency, occurred_at, received_at, applied,"
    "  correlation_id FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::int8[], $10::text[],"
    "  $11::timestamptz[], $12::timestamptz[], $13::bool[], $14::text[]) WITH ORDINALITY AS e(order_id,"
    "  provider_event_id, event_id, status, amount, currency, occurred_at, received_at, applied, correlation_id, n)"
    "  WHERE e.order_id IN (SELECT order_id FROM orders_written) ORDER BY e.n),"
    " disputes_created AS ("
    "  INSERT INTO disputes (dispute_id, order_id, user_id, status, reason, amount, currency, last_event_at)"
    "  SELECT * FROM unnest($15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::int8[],"
    "  $21::text[], $22::timestamptz[]) ON CONFLICT (dispute_id) DO NOTHING RETURNING dispute_id),"
    " disputes_written AS ("
    "  UPDATE disputes d SET status = u.status, reason = coalesce(u.reason, d.reason),"
    "  amount = coalesce(u.amount, d.amount), currency = coalesce(u.currency, d.currency),"
    "  last_event_at = u.last_event_at, updated_at = now()"
    "  FROM unnest($23::text[], $24::text[], $25::text[], $26::text[], $27::text[], $28::int8[], $29::text[],"
    "  $30::timestamptz[], $31::text[])"
    "  AS u(dispute_id, order_id, user_id, status, reason, amount, currency, last_event_at, version)"
    "  WHERE d.dispute_id = u.dispute_id AND d.xmin = u.version::xid RETURNING d.dispute_id),"
    " dispute_events_added AS ("
    "  INSERT INTO dispute_events (dispute_id, provider_event_id, event_id, status, reason, amount, currency,"
    "  occurred_at, received_at, applied, correlation_id)"
    "  SELECT dispute_id, provider_event_id, event_id, status, reason, amount, currency, occurred_at, received_at,"
    "  applied, correlation_id FROM unnest($32::text[], $33::text[], $34::text[], $35::text[], $36::text[],"
    "  $37::int8[], $38::text[], $39::timestamptz[], $40::timestamptz[], $41::bool[], $42::text[])"
    "  WITH ORDINALITY AS e(dispute_id, provider_event_id, event_id, status, reason, amount, currency, occurred_at,"
    "  received_at, applied, correlation_id, n) WHERE e.dispute_id IN"
    "  (SELECT dispute_id FROM disputes_created UNION ALL SELECT dispute_id FROM disputes_written) ORDER BY e.n)"
    " SELECT 'locked' AS kind, count(*)::text AS key FROM locked"
    " UNION ALL SELECT 'order', order_id FROM orders_written"
    " UNION ALL SELECT 'dispute', dispute_id FROM disputes_created"
    " UNION ALL SELECT 'dispute', dispute_id FROM disputes_written")

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
# raises UniqueViolation, as does an event another writer stored: the batch is run again). Every
# order and dispute with an event stored is updated, also when only a stale event is (its details
# NULL: kept), so that it has a new row version for the unlocked path's writers to notice.
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
    "  UPDATE disputes d SET status = u.status, reason = coalesce(u.reason, d.reason),"
    "  amount = coalesce(u.amount, d.amount), currency = coalesce(u.currency, d.currency),"
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
    """Apply ``updates`` (in order); one outcome per update.

    With ``defer_after_not_found``, a user's events after one of theirs whose order or
    dispute is missing are not tried (``DEFERRED``, see ``plan_batch``): the caller
    retries them in order, and the rest of the batch is not held back.

    Not one transaction: if deciding some entities again fails (the shard went away, a deadline,
    data PostgreSQL refuses), what the first write stored stays stored, and a caller that runs the
    batch again finds those events ``DUPLICATE`` — as after any answer lost on the way back.
    """
    try:
        async with pool.acquire() as conn:
            outcomes, changed_meanwhile = await _apply_unless_changed(conn, updates, defer_after_not_found)
    except _RETRYABLE:  # a unique key or a deadlock: the statement wrote nothing
        return await _apply_locked(pool, updates, defer_after_not_found)
    again = [index for index, update in enumerate(updates)
             if _entity(update) in changed_meanwhile and outcomes[index] is not Outcome.DEFERRED]
    if again:
        redone = await _apply_locked(pool, [updates[index] for index in again], defer_after_not_found)
        for index, outcome in zip(again, redone, strict=True):
            outcomes[index] = outcome
    return outcomes


async def _apply_locked(pool: asyncpg.Pool, updates: Sequence[Update], defer: bool) -> list[Outcome]:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await _apply(conn, updates, defer)
        except _RETRYABLE:
            if attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")


@dataclass
class _Stored:
    """What the read found, by kind of row (and, read unlocked, each order's and dispute's row version)."""

    orders: dict[str, EntityState] = field(default_factory=dict)
    order_events: list[tuple[str, str]] = field(default_factory=list)
    disputes: dict[str, EntityState] = field(default_factory=dict)
    dispute_events: list[tuple[str, str]] = field(default_factory=list)
    versions: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, row: asyncpg.Record) -> None:
        kind, key, ref = row["kind"], row["key"], row["ref"]
        if (version := row.get("version")) is not None:
            self.versions[(kind, key)] = version
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


async def _apply_unless_changed(conn: asyncpg.Connection, updates: Sequence[Update], defer: bool
                                ) -> tuple[list[Outcome], set[tuple[str, str]]]:
    """The outcomes as of one read, and the orders and disputes (``_entity``) whose events must be
    decided again, locked (their outcomes here do not stand): those another writer changed before the
    write, and those with a refusal ``_unconfirmed`` — not written here at all."""
    orders = [u for u in updates if isinstance(u, OrderUpdate)]
    disputes = [u for u in updates if isinstance(u, DisputeUpdate)]
    stored = _Stored()
    for row in await conn.fetch(_READ, sorted({e.order_id for e in updates}), sorted({e.dispute_id for e in disputes}),
                                [e.order_id for e in orders], [e.provider_event_id for e in orders],
                                [e.dispute_id for e in disputes], [e.provider_event_id for e in disputes]):
        stored.add(row)
    order_plan, dispute_plan = _plans(orders, disputes, stored, defer)
    outcomes = _in_order(updates, order_plan, dispute_plan)
    refused = {_entity(update) for update, outcome in zip(updates, outcomes, strict=True)
               if _unconfirmed(update, outcome, stored)}
    order_rows = _order_rows(order_plan, stored, {key for kind, key in refused if kind == "order"})
    new_disputes, old_disputes = _dispute_rows(dispute_plan, stored,
                                               {key for kind, key in refused if kind == "dispute"})
    touched = ({("order", state.entity_id) for state in order_rows}
               | {("dispute", row[0]) for row in (*new_disputes, *old_disputes)})
    written: set[tuple[str, str]] = set()
    if touched:
        held = sorted({state.entity_id for state in order_rows} | {row[1] for row in (*new_disputes, *old_disputes)})
        orders_read = [(*row, stored.versions[("order", row[0])]) for row in _order_state_rows(order_rows)]
        disputes_read = [(*row, stored.versions[("dispute", row[0])]) for row in old_disputes]
        rows = await conn.fetch(_WRITE_UNLESS_CHANGED, *_columns(orders_read, 4), *_order_event_columns(order_plan),
                                *_columns(new_disputes, 8), *_columns(disputes_read, 9),
                                *_dispute_event_columns(dispute_plan), held)
        written = {(row["kind"], row["key"]) for row in rows if row["kind"] != "locked"}
    return outcomes, (touched - written) | refused


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
    order_plan, dispute_plan = _plans(orders, disputes, stored, defer)
    if order_plan.inserts or dispute_plan.inserts:  # (no state changes without an event stored)
        new_disputes, old_disputes = _dispute_rows(dispute_plan, stored)
        await conn.execute(_WRITE, *_order_event_columns(order_plan),
                           *_columns(_order_state_rows(_order_rows(order_plan, stored)), 3),
                           *_columns(new_disputes, 8), *_columns(old_disputes, 8),
                           *_dispute_event_columns(dispute_plan))
    return _in_order(updates, order_plan, dispute_plan)


def _plans(orders: list[OrderUpdate], disputes: list[DisputeUpdate], stored: _Stored, defer: bool
           ) -> tuple[Plan[OrderUpdate], Plan[DisputeUpdate]]:
    order_plan = plan_batch(orders, stored.orders, stored.order_events, lambda e: e.order_id, decide_order, defer)
    dispute_plan = plan_batch(disputes, stored.disputes, stored.dispute_events, lambda e: e.dispute_id,
                              lambda state, e: decide_dispute(state, e, stored.order_user(e.order_id)), defer)
    return order_plan, dispute_plan


def _in_order(updates: Sequence[Update], order_plan: Plan[OrderUpdate], dispute_plan: Plan[DisputeUpdate]
              ) -> list[Outcome]:
    order_outcomes, dispute_outcomes = iter(order_plan.outcomes), iter(dispute_plan.outcomes)
    return [next(order_outcomes) if isinstance(u, OrderUpdate) else next(dispute_outcomes) for u in updates]


def _unconfirmed(update: Update, outcome: Outcome, stored: _Stored) -> bool:
    """A refusal stores nothing, so no row version confirms it when read unlocked: judged against the
    rows as last committed, it may precede another writer's change to them that is under way — a
    redelivery racing its first delivery would be refused, not a duplicate. Those are decided again
    the locked way, which waits for that writer: an invalid transition (the state may be moving), a
    dispute not found on an existing order (it may be being opened). The others stand: an order not
    found (orders are created by ``POST /orders`` only, never by a writer of events), a dispute on
    an order not found, another user's order or dispute (users and orders never change)."""
    if outcome is Outcome.INVALID_TRANSITION:
        return True
    return outcome is Outcome.NOT_FOUND and isinstance(update, DisputeUpdate) and update.order_id in stored.orders


def _entity(update: Update) -> tuple[str, str]:
    return ("dispute", update.dispute_id) if isinstance(update, DisputeUpdate) else ("order", update.order_id)


def _order_rows(plan: Plan[OrderUpdate], stored: _Stored, skip: set[str] | None = None) -> list[EntityState]:
    """Every order with an event to store, in id order: its new state, or its state as read (only a
    stale event: it is written anyway, for a new row version)."""
    order_ids = sorted({event.order_id for event, _ in plan.inserts} - (skip or set()))
    return [plan.states.get(order_id) or stored.orders[order_id] for order_id in order_ids]


def _order_state_rows(states: list[EntityState]) -> list[tuple[Any, ...]]:
    return [(state.entity_id, state.status, state.last_event_at) for state in states]


def _order_event_columns(plan: Plan[OrderUpdate]) -> list[list[Any]]:
    """The events to store, in the batch's order."""
    events = [(e.order_id, e.provider_event_id, e.event_id, e.status, e.amount, e.currency, e.occurred_at,
               e.received_at, applied, e.correlation_id) for e, applied in plan.inserts]
    return _columns(events, 10)


def _dispute_rows(plan: Plan[DisputeUpdate], stored: _Stored, skip: set[str] | None = None
                  ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The disputes to create and the stored ones with an event to store, each in id order (two writers
    creating the same new disputes take their keys' locks in the same order): final state and the
    details of its last applied event — none (NULL: kept) when only a stale event is stored."""
    latest = {event.dispute_id: event for event, applied in plan.inserts if applied}

    def row(state: EntityState) -> tuple[Any, ...]:
        event = latest.get(state.entity_id)
        details = (event.reason, event.amount, event.currency) if event else (None, None, None)
        return state.entity_id, state.order_id, state.user_id, state.status, *details, state.last_event_at

    dispute_ids = sorted({event.dispute_id for event, _ in plan.inserts} - (skip or set()))
    new = [row(plan.states[dispute_id]) for dispute_id in dispute_ids if dispute_id in plan.created]
    old = [row(plan.states.get(dispute_id) or stored.disputes[dispute_id])
           for dispute_id in dispute_ids if dispute_id not in plan.created]
    return new, old


def _dispute_event_columns(plan: Plan[DisputeUpdate]) -> list[list[Any]]:
    """The events to store, grouped by dispute in id order (two writers storing events of the same
    disputes wait for each other's keys in the same order), each dispute's in the batch's order."""
    ordered = sorted(enumerate(plan.inserts), key=lambda pair: (pair[1][0].dispute_id, pair[0]))
    events = [(e.dispute_id, e.provider_event_id, e.event_id, e.status, e.reason, e.amount, e.currency,
               e.occurred_at, e.received_at, applied, e.correlation_id) for _, (e, applied) in ordered]
    return _columns(events, 11)


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
