"""Orders in memory with the real domain rules: the ``BatchApplier`` behind the fake-broker tests.

A batch is applied atomically (all of it or, if cancelled, none), through
``shared.domain.plan_batch`` exactly as the repository does. ``gate`` holds every
batch until set (a stuck database); ``latency_seconds`` makes each batch take time.
"""

from __future__ import annotations

import datetime as dt
import itertools

import trio
import trio.lowlevel

from shared.domain import EntityState, Outcome, decide_order, plan_batch
from shared.envelope import TraceContext, build_envelope
from shared.messages import OrderUpdate, OrderWebhook, Update, encode_json
from tests.workers.fake_broker import FakeBroker
from workers.records import DeadLetter

T0 = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
LIFECYCLE = ("pending", "authorized", "paid", "refunded")  # each step is invalid if it comes too early
_ids = itertools.count()


class MemoryStore:
    def __init__(self) -> None:
        self.orders: dict[str, EntityState] = {}
        self.stored: set[tuple[str, str]] = set()
        self.applied: list[OrderUpdate] = []  # in the order they were applied
        self.gate: trio.Event | None = None
        self.latency_seconds = 0.0
        self.batches = 0

    def create_order(self, order_id: str, user_id: str) -> None:
        self.orders[order_id] = EntityState(order_id, user_id, "created", None)

    async def apply(self, updates: list[Update]) -> list[Outcome | str]:
        if self.gate is not None:
            await self.gate.wait()
        await trio.sleep(self.latency_seconds)
        orders = [u for u in updates if isinstance(u, OrderUpdate)]
        plan = plan_batch(orders, self.orders, self.stored, lambda e: e.order_id, decide_order, True)
        self.stored |= {(e.order_id, e.provider_event_id) for e, _ in plan.inserts}
        self.orders.update(plan.states)
        self.applied += [event for event, applied in plan.inserts if applied]
        self.batches += 1
        return list(plan.outcomes)

    async def refine_not_found(self, update: Update) -> Outcome:
        await trio.lowlevel.checkpoint()
        return Outcome.NOT_FOUND

    def statuses(self, order_id: str) -> list[str]:
        return [u.status for u in self.applied if u.order_id == order_id]


class DeadLetters(list[DeadLetter]):
    async def send(self, letter: DeadLetter) -> None:
        await trio.lowlevel.checkpoint()
        self.append(letter)

    def reasons(self) -> list[str]:
        return [dict(letter.headers)["dlq.reason"].decode() for letter in self]


def envelope_bytes(user: str, status: str, seconds: int, order_id: str | None = None) -> bytes:
    event = OrderWebhook(provider_event_id=f"pe-{next(_ids)}", order_id=order_id or f"order-{user}", user_id=user,
                         status=status, amount=1000, currency="EUR", occurred_at=T0 + dt.timedelta(seconds=seconds))
    return encode_json(build_envelope(event, dt.datetime.now(dt.UTC), "corr", TraceContext.from_header(None)))


def produce_lifecycles(broker: FakeBroker, store: MemoryStore, users: list[str]) -> int:
    """Every user's order goes through ``LIFECYCLE``, users interleaved, each user on one partition."""
    for user in users:
        store.create_order(f"order-{user}", user)
    for step, status in enumerate(LIFECYCLE):
        for user in users:
            broker.produce(partition_of(broker, user), user.encode(), envelope_bytes(user, status, step))
    return len(users) * len(LIFECYCLE)


def partition_of(broker: FakeBroker, user: str) -> int:
    return sum(user.encode()) % len(broker.logs)


def assert_all_applied_once_in_order(store: MemoryStore, users: list[str]) -> None:
    keys = [(u.order_id, u.provider_event_id) for u in store.applied]
    assert len(keys) == len(set(keys)), "an event was applied twice"
    for user in users:
        assert store.statuses(f"order-{user}") == list(LIFECYCLE), user
