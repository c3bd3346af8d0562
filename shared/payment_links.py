"""The link from a provider's payment to its order: recorded when a payment event is applied,
read when a dispute that names only that payment is applied (api and workers alike).

Why a table of its own, on ``shard_for(provider_payment_id)``: ingest must stay free of
database calls in kafka mode, and a dispute event names no user, so the user's shard is
unknown until the link is read — one lookup on one known shard. The link is written after
its order event's transaction (a separate shard): a crash in between leaves the event
unacknowledged (no offset commit, no 2xx), and its redelivery — a duplicate — writes the
link then. A dispute whose payment has no link yet is ``NOT_FOUND``: the workers' retry
lane, then the DLQ (replayable); the api's 404 (Stripe retries). The first link of a
payment stands: a dispute is never moved to another order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial

import asyncpg

from shared.database import Database
from shared.domain import Outcome
from shared.messages import InboundUpdate, OrderUpdate, PaymentDisputeUpdate, Update
from shared.sharding import shard_for

# Outcomes after which the order event's order exists and belongs to its user: the link may be written.
# (INVALID_TRANSITION too: the transition is judged after the user, so the order is that user's.)
LINKABLE = frozenset({Outcome.APPLIED, Outcome.STALE, Outcome.DUPLICATE, Outcome.INVALID_TRANSITION})
Link = tuple[str, str]  # (order_id, user_id)


async def _insert(pool: asyncpg.Pool, rows: list[tuple[str, str, str]]) -> None:
    await pool.execute(
        "INSERT INTO payment_links (provider_payment_id, order_id, user_id)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT (provider_payment_id) DO NOTHING",
        *[list(column) for column in zip(*rows, strict=True)])


async def _select(pool: asyncpg.Pool, ids: list[str]) -> dict[str, Link]:
    rows = await pool.fetch("SELECT provider_payment_id, order_id, user_id FROM payment_links"
                            " WHERE provider_payment_id = ANY($1::text[])", ids)
    return {row[0]: (row[1], row[2]) for row in rows}


class PaymentLinks:
    def __init__(self, database: Database) -> None:
        self._database = database

    def _by_shard(self, ids: Iterable[str]) -> dict[int, list[str]]:
        shards: dict[int, list[str]] = {}
        for payment_id in sorted(set(ids)):
            shards.setdefault(shard_for(payment_id, self._database.shard_count), []).append(payment_id)
        return shards

    async def record(self, updates: Sequence[OrderUpdate]) -> None:
        """Link each update's payment to its order (updates whose outcome is ``LINKABLE``)."""
        rows: dict[str, tuple[str, str, str]] = {}
        for u in updates:  # the first of a batch, as the first ever: a payment's link never moves
            if u.provider_payment_id:
                rows.setdefault(u.provider_payment_id, (u.provider_payment_id, u.order_id, u.user_id))
        await self._database.run_on_shards({
            shard: partial(self._database.run, shard, _insert, [rows[i] for i in ids])
            for shard, ids in self._by_shard(rows).items()})

    async def find(self, payment_ids: Iterable[str]) -> dict[str, Link]:
        found: dict[str, Link] = {}

        async def ask(shard: int, ids: list[str]) -> None:
            found.update(await self._database.run(shard, _select, ids))

        by_shard = self._by_shard(payment_ids)
        if by_shard:  # most batches hold no dispute named by its payment: no database work at all
            await self._database.run_on_shards({shard: partial(ask, shard, ids) for shard, ids in by_shard.items()})
        return found

    async def resolve(self, updates: Sequence[InboundUpdate]) -> list[Update | None]:
        """Each update as it is applied: a payment's dispute becomes its order's dispute update,
        or None while its payment has no link."""
        links = await self.find(u.provider_payment_id for u in updates if isinstance(u, PaymentDisputeUpdate))
        return [_resolved(update, links) for update in updates]


def _resolved(update: InboundUpdate, links: dict[str, Link]) -> Update | None:
    if not isinstance(update, PaymentDisputeUpdate):
        return update
    link = links.get(update.provider_payment_id)
    return update.resolved(*link) if link else None


def linkable(updates: Sequence[Update], outcomes: Sequence[Outcome | str]) -> list[OrderUpdate]:
    """The order updates that name a payment and whose outcome proves their order is theirs."""
    return [u for u, o in zip(updates, outcomes, strict=True)
            if isinstance(u, OrderUpdate) and u.provider_payment_id and o in LINKABLE]
