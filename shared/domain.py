"""The domain rules: order and dispute state machines and the outcome of applying an event.

Everything that decides what an event does lives here, as data and pure
functions — no I/O, no async — shared by the api and the workers. The
repository loads the current state, asks ``plan_batch`` what to do with a batch of
events in order, and writes the plan.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Generic, Protocol, TypeVar

from shared.errors import Conflict, InvalidTransition, NotFound, UserMismatch, WebhookError


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    INVALID_TRANSITION = "invalid_transition"
    NOT_FOUND = "not_found"
    USER_MISMATCH = "user_mismatch"
    DEFERRED = "deferred"  # not tried: an earlier event of its user in the batch was not found


# Outcomes that store the event (the others change nothing).
STORED = frozenset({Outcome.APPLIED, Outcome.STALE})
# Outcomes that answer "done" to the sender; DUPLICATE is "done before" (409 inside, 200 outside).
SUCCESSFUL = frozenset({Outcome.APPLIED, Outcome.STALE})

# The error each rejecting outcome is reported as (its HTTP/gRPC/DLQ mapping is in shared.errors).
OUTCOME_ERRORS: Mapping[Outcome, type[WebhookError]] = {
    Outcome.DUPLICATE: Conflict,
    Outcome.NOT_FOUND: NotFound,
    Outcome.INVALID_TRANSITION: InvalidTransition,
    Outcome.USER_MISMATCH: UserMismatch,
}

ORDER_STATUSES = ("created", "pending", "authorized", "paid", "failed", "canceled", "refunded")
ORDER_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "created": frozenset({"pending", "authorized", "paid", "failed", "canceled"}),
    "pending": frozenset({"authorized", "paid", "failed", "canceled"}),
    "authorized": frozenset({"paid", "failed", "canceled"}),
    "paid": frozenset({"refunded"}),
    "failed": frozenset(),
    "canceled": frozenset(),
    "refunded": frozenset(),
}

DISPUTE_STATUSES = ("opened", "evidence_required", "evidence_submitted", "won", "lost")
DISPUTE_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "opened": frozenset({"evidence_required", "evidence_submitted", "won", "lost"}),
    "evidence_required": frozenset({"evidence_submitted", "lost"}),
    "evidence_submitted": frozenset({"won", "lost"}),
    "won": frozenset(),
    "lost": frozenset(),
}
DISPUTE_FIRST_STATUS = "opened"


def is_allowed(transitions: Mapping[str, frozenset[str]], current: str, new: str) -> bool:
    """A same-status event is allowed (a no-op); otherwise the table decides."""
    return new == current or new in transitions[current]


@dataclass(frozen=True)
class EntityState:
    """What the rules need to know of a stored order or dispute."""

    entity_id: str
    user_id: str
    status: str
    last_event_at: dt.datetime | None
    order_id: str | None = None  # disputes: the order they belong to


class Event(Protocol):
    @property
    def provider_event_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def occurred_at(self) -> dt.datetime: ...


E = TypeVar("E", bound=Event)


def _advance(transitions: Mapping[str, frozenset[str]], state: EntityState,
             event: Event) -> tuple[Outcome, EntityState]:
    """An event of the right user on a known entity: stale, not allowed, or applied."""
    if state.last_event_at is not None and event.occurred_at < state.last_event_at:
        return Outcome.STALE, state
    if not is_allowed(transitions, state.status, event.status):
        return Outcome.INVALID_TRANSITION, state
    return Outcome.APPLIED, replace(state, status=event.status, last_event_at=event.occurred_at)


def decide_order(state: EntityState | None, event: Event) -> tuple[Outcome, EntityState | None]:
    """The outcome of one order event against the order's current state, and the new state."""
    if state is None:
        return Outcome.NOT_FOUND, None
    if event.user_id != state.user_id:
        return Outcome.USER_MISMATCH, state
    return _advance(ORDER_TRANSITIONS, state, event)


class DisputeEvent(Event, Protocol):
    @property
    def dispute_id(self) -> str: ...
    @property
    def order_id(self) -> str: ...


def decide_dispute(
    state: EntityState | None, event: DisputeEvent, order_user_id: str | None
) -> tuple[Outcome, EntityState | None]:
    """Like ``decide_order``; an unknown dispute is created by ``opened`` on an existing order.

    ``order_user_id`` is the user of the event's order, or None when that order does not exist.
    """
    if state is None:
        if order_user_id is None or event.status != DISPUTE_FIRST_STATUS:
            return Outcome.NOT_FOUND, None
        if event.user_id != order_user_id:
            return Outcome.USER_MISMATCH, None
        return Outcome.APPLIED, EntityState(event.dispute_id, event.user_id, event.status, event.occurred_at,
                                            event.order_id)
    if event.user_id != state.user_id or event.order_id != state.order_id:
        return Outcome.USER_MISMATCH, state
    return _advance(DISPUTE_TRANSITIONS, state, event)


@dataclass(frozen=True)
class Plan(Generic[E]):
    """What to write for a batch: one outcome per event, rows to insert, states to save."""

    outcomes: list[Outcome]
    inserts: list[tuple[E, bool]]  # (event, applied)
    states: dict[str, EntityState]  # entity id -> final state, only for changed entities
    created: set[str]  # entity ids that did not exist before this batch


def plan_batch(
    events: Sequence[E],
    states: Mapping[str, EntityState],
    stored_keys: Iterable[tuple[str, str]],
    entity_of: Callable[[E], str],
    decide: Callable[[EntityState | None, E], tuple[Outcome, EntityState | None]],
    defer_after_not_found: bool = False,
) -> Plan[E]:
    """Apply ``decide`` to each event in order, threading each entity's state through.

    ``stored_keys`` are the (entity id, provider_event_id) pairs already in the
    database; a pair seen earlier in the same batch is a duplicate too. With
    ``defer_after_not_found``, a user's events after one of theirs that was not found
    are ``DEFERRED`` (neither tried nor stored): the workers retry that user's events
    in order later, while every other user's events of the batch go ahead.
    """
    current = dict(states)
    seen = set(stored_keys)
    outcomes: list[Outcome] = []
    inserts: list[tuple[E, bool]] = []
    changed: dict[str, EntityState] = {}
    waiting: set[str] = set()  # users with a not-found event earlier in this batch
    for event in events:
        if event.user_id in waiting:
            outcomes.append(Outcome.DEFERRED)
            continue
        entity = entity_of(event)
        key = (entity, event.provider_event_id)
        if key in seen:
            outcomes.append(Outcome.DUPLICATE)
            continue
        outcome, new_state = decide(current.get(entity), event)
        outcomes.append(outcome)
        if outcome is Outcome.NOT_FOUND and defer_after_not_found:
            waiting.add(event.user_id)
        if outcome in STORED:
            seen.add(key)
            inserts.append((event, outcome is Outcome.APPLIED))
        if outcome is Outcome.APPLIED and new_state is not None:
            current[entity] = changed[entity] = new_state
    return Plan(outcomes, inserts, changed, set(changed) - set(states))
