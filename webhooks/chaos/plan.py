"""What the chaos load sends: per-order sequences of webhooks, in the order a provider would.

Each order gets one chain: ``authorized → paid``, then either ``refunded`` or a chargeback
``opened → evidence_required → evidence_submitted → won|lost``, or nothing more; every
event's ``occurred_at`` is later than the one before. A chain is sent strictly in order (the
next event only after the previous one was answered 2xx), so its intended order is its list
order, and the audit can hold the stored rows to it. Pure: no I/O, seeded randomness.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

ORDER, DISPUTE = "orders", "disputes"
AMOUNT, CURRENCY = 4999, "EUR"
DISPUTE_STATUSES = frozenset({"opened", "evidence_required", "evidence_submitted", "won", "lost"})


@dataclass(frozen=True)
class PlannedEvent:
    """One webhook of a chain; ``entity_id`` is the order or dispute it moves, ``step`` its place in the chain."""

    kind: str  # ORDER or DISPUTE: the endpoint and the table
    entity_id: str
    provider_event_id: str
    status: str
    step: int
    payload: dict[str, object]


@dataclass(frozen=True)
class Chain:
    order_id: str
    user_id: str
    events: tuple[PlannedEvent, ...]


def _tail(rng: random.Random) -> tuple[str, ...]:
    roll = rng.random()
    if roll < 0.3:
        return ("refunded",)
    if roll < 0.6:
        return ("opened", "evidence_required", "evidence_submitted", rng.choice(("won", "lost")))
    return ()


def chain(run: str, index: int, users: int, start: dt.datetime, rng: random.Random) -> Chain:
    """Chain ``index`` of ``run``; chains share ``users`` users round-robin (a user has several orders)."""
    order_id, user_id = f"ord_{run}_{index}", f"usr_{run}_{index % users}"
    common = {"order_id": order_id, "user_id": user_id, "amount": AMOUNT, "currency": CURRENCY}
    events = []
    for step, status in enumerate(("authorized", "paid", *_tail(rng))):
        occurred_at = (start + dt.timedelta(seconds=step)).isoformat()
        payload = {**common, "provider_event_id": f"evt_{run}_{index}_{step}", "status": status,
                   "occurred_at": occurred_at}
        kind, entity = ORDER, order_id
        if status in DISPUTE_STATUSES:
            kind, entity = DISPUTE, f"dsp_{run}_{index}"
            payload.update(dispute_id=entity, reason="fraudulent")
        events.append(PlannedEvent(kind, entity, str(payload["provider_event_id"]), status, step, payload))
    return Chain(order_id, user_id, tuple(events))


def chains(run: str, count: int, users: int, start: dt.datetime, seed: int = 0) -> list[Chain]:
    rng = random.Random(seed)
    return [chain(run, index, users, start, rng) for index in range(count)]
