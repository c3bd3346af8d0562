"""The two ways ``apply_batch`` writes must agree: random batches of every shape (applied, stale,
duplicate, invalid, not found, another user's; orders and disputes; with and without the workers'
deferral) through ``apply_batch`` (unlocked, and locked for what it sends there) on shard 0 and
through the locked path alone on shard 1, under the generic plans a long-lived process runs.
Outcomes, every column of every stored row, each entity's events in the batch's order, and the
orders' and disputes' final rows against a model of "the last applied event wins"."""

from __future__ import annotations

import itertools
import random
from typing import Any

import asyncpg
import pytest
import trio

from shared.asyncio_loop import open_asyncio_loop
from shared.domain import STORED, Outcome
from shared.messages import DisputeUpdate, OrderUpdate, Update
from shared.repository import _apply_locked, apply_batch
from shared.settings import Settings
from tests.api.updates import at, dispute_update, order_update

ORDERS = [f"o{i}" for i in range(5)]
USER = {o: f"u{i % 3}" for i, o in enumerate(ORDERS)}
DISPUTES = [f"d{i}" for i in range(30)]
DORDER = {d: ORDERS[i % 5] for i, d in enumerate(DISPUTES)}
OSTAT = ("created", "pending", "authorized", "paid", "failed", "canceled", "refunded")
DSTAT = ("opened", "opened", "evidence_required", "evidence_submitted", "won", "lost")
_n = itertools.count()


def _cur() -> str:
    k = next(_n)
    return "".join(chr(65 + (k // 26 ** p) % 26) for p in range(3))


def _event(rng: random.Random, provider_ids: int) -> Update:
    k = next(_n)
    extra: dict[str, Any] = dict(amount=k * 7 + 1, currency=_cur(), event_id=f"ev{k}", correlation_id=f"c{k}",
                                 received_at=at(1000 + k), provider_event_id=f"p{rng.randrange(provider_ids)}")
    when = at(rng.randrange(8))
    if rng.random() < 0.5:
        o = rng.choice(ORDERS + ["oM"])
        user = USER.get(o, "u0") if rng.random() < 0.9 else "u9"
        return order_update(o, user, rng.choice(OSTAT), when, **extra)
    d = rng.choice(DISPUTES)
    o = DORDER[d] if rng.random() < 0.9 else rng.choice(ORDERS + ["oM"])
    user = USER.get(o, "u0") if rng.random() < 0.92 else "u9"
    return dispute_update(d, o, user, rng.choice(DSTAT), when, reason=f"r{k}", **extra)


DUMP = {
    "orders": "SELECT order_id, user_id, status, last_event_at FROM orders ORDER BY order_id",
    "disputes": "SELECT dispute_id, order_id, user_id, status, reason, amount, currency, last_event_at"
                " FROM disputes ORDER BY dispute_id",
    "order_events": "SELECT order_id, provider_event_id, event_id, status, amount, currency, occurred_at,"
                    " received_at, applied, correlation_id FROM order_events ORDER BY order_id, id",
    "dispute_events": "SELECT dispute_id, provider_event_id, event_id, status, reason, amount, currency,"
                      " occurred_at, received_at, applied, correlation_id FROM dispute_events"
                      " ORDER BY dispute_id, stored_at",
}


def _row(u: Update, applied: bool) -> tuple[Any, ...]:
    if isinstance(u, OrderUpdate):
        return (u.order_id, u.provider_event_id, u.event_id, u.status, u.amount, u.currency, u.occurred_at,
                u.received_at, applied, u.correlation_id)
    return (u.dispute_id, u.provider_event_id, u.event_id, u.status, u.reason, u.amount, u.currency,
            u.occurred_at, u.received_at, applied, u.correlation_id)


@pytest.mark.parametrize(("seed", "provider_ids"), [(3, 12), (4, 400), (5, 100_000)])  # few ids: many duplicates
async def test_both_paths_store_the_same_on_random_batches(settings: Settings, seed: int, provider_ids: int) -> None:
    rng = random.Random(seed)
    sent: list[str] = []

    async def generic(connection: asyncpg.Connection) -> None:
        await connection.execute("SET plan_cache_mode = force_generic_plan")
        connection.add_query_logger(lambda q: sent.append(q.query))

    with trio.fail_after(240):
        async with open_asyncio_loop() as loop:
            def aio(coro: Any) -> Any:
                return loop.run_aio_coroutine(coro)
            pools = [await aio(asyncpg.create_pool(url, min_size=1, max_size=2, init=generic))
                     for url in settings.database_urls]
            try:
                for pool in pools:
                    for o in ORDERS:
                        await aio(pool.execute("INSERT INTO orders (order_id, user_id, status, amount, currency)"
                                               " VALUES ($1, $2, 'created', 1, 'EUR')", o, USER[o]))
                expected: dict[str, list[tuple[Any, ...]]] = {"order_events": [], "dispute_events": []}
                stats: dict[tuple[int, int], int] = {}
                model_d: dict[str, tuple[Any, ...]] = {}
                model_o: dict[str, tuple[Any, ...]] = {o: (o, USER[o], "created", None) for o in ORDERS}
                for round_ in range(150):
                    batch = [_event(rng, provider_ids) for _ in range(rng.randrange(1, 14))]
                    defer = rng.random() < 0.3
                    sent.clear()
                    got = await aio(apply_batch(pools[0], batch, defer))
                    unl = sum(q.startswith("WITH locked AS MATERIALIZED") for q in sent)
                    lck = sum(q.startswith("WITH order_events_added") for q in sent)
                    stats[(unl, lck)] = stats.get((unl, lck), 0) + 1
                    sent.clear()
                    want = await aio(_apply_locked(pools[1], batch, defer))
                    assert got == want, (round_, batch)
                    for u, outcome in zip(batch, got, strict=True):
                        if outcome is Outcome.APPLIED and isinstance(u, DisputeUpdate):
                            model_d[u.dispute_id] = (u.dispute_id, u.order_id, u.user_id, u.status, u.reason,
                                                     u.amount, u.currency, u.occurred_at)
                        if outcome is Outcome.APPLIED and isinstance(u, OrderUpdate):
                            model_o[u.order_id] = (u.order_id, u.user_id, u.status, u.occurred_at)
                        if outcome in STORED:
                            kind = "order_events" if isinstance(u, OrderUpdate) else "dispute_events"
                            expected[kind].append(_row(u, outcome is Outcome.APPLIED))
                    dumps = []
                    for pool in pools:
                        dumps.append({name: [tuple(r) for r in await aio(pool.fetch(sql))]
                                      for name, sql in DUMP.items()})
                    for name in DUMP:
                        assert dumps[0][name] == dumps[1][name], (round_, name, batch)
                    assert dumps[0]["disputes"] == [model_d[k] for k in sorted(model_d)], round_
                    assert dumps[0]["orders"] == [model_o[k] for k in sorted(model_o)], round_
                    for name, rows in expected.items():  # per entity in batch order (stable sort)
                        assert dumps[0][name] == sorted(rows, key=lambda r: r[0]), (round_, name)
                assert stats.get((1, 0), 0) > 20 and stats.get((1, 1), 0) > 3  # both paths, and their mixes, ran
            finally:
                for pool in pools:
                    await aio(pool.close())
