"""The state machines, exhaustively, and batch planning, by example and by property."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain import (
    DISPUTE_STATUSES,
    DISPUTE_TRANSITIONS,
    ORDER_STATUSES,
    ORDER_TRANSITIONS,
    EntityState,
    Outcome,
    decide_dispute,
    decide_order,
    plan_batch,
)

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)

# The spec's tables, written out again as pairs: the code's tables must equal them.
SPEC_ORDER = {
    ("created", "pending"), ("created", "authorized"), ("created", "paid"), ("created", "failed"),
    ("created", "canceled"), ("pending", "authorized"), ("pending", "paid"), ("pending", "failed"),
    ("pending", "canceled"), ("authorized", "paid"), ("authorized", "failed"), ("authorized", "canceled"),
    ("paid", "refunded"),
}
SPEC_DISPUTE = {
    ("opened", "evidence_required"), ("opened", "evidence_submitted"), ("opened", "won"), ("opened", "lost"),
    ("evidence_required", "evidence_submitted"), ("evidence_required", "lost"),
    ("evidence_submitted", "won"), ("evidence_submitted", "lost"),
}


@dataclass(frozen=True)
class Ev:
    provider_event_id: str
    user_id: str
    status: str
    occurred_at: dt.datetime
    order_id: str = "o1"
    dispute_id: str = "d1"


def order(status: str, last: dt.datetime | None = T0) -> EntityState:
    return EntityState("o1", "u1", status, last)


def dispute(status: str) -> EntityState:
    return EntityState("d1", "u1", status, T0, "o1")


@pytest.mark.parametrize(("current", "new"), list(itertools.product(ORDER_STATUSES, ORDER_STATUSES[1:])))
def test_every_order_pair(current: str, new: str) -> None:
    outcome, state = decide_order(order(current), Ev("p", "u1", new, T0 + dt.timedelta(seconds=1)))
    if (current, new) in SPEC_ORDER or current == new:
        assert outcome is Outcome.APPLIED and state is not None and state.status == new
    else:
        assert outcome is Outcome.INVALID_TRANSITION and state == order(current)


@pytest.mark.parametrize(("current", "new"), list(itertools.product(DISPUTE_STATUSES, DISPUTE_STATUSES)))
def test_every_dispute_pair(current: str, new: str) -> None:
    outcome, state = decide_dispute(dispute(current), Ev("p", "u1", new, T0 + dt.timedelta(seconds=1)), "u1")
    if (current, new) in SPEC_DISPUTE or current == new:
        assert outcome is Outcome.APPLIED and state is not None and state.status == new
    else:
        assert outcome is Outcome.INVALID_TRANSITION


def test_tables_are_the_spec() -> None:
    assert {(a, b) for a, bs in ORDER_TRANSITIONS.items() for b in bs} == SPEC_ORDER
    assert {(a, b) for a, bs in DISPUTE_TRANSITIONS.items() for b in bs} == SPEC_DISPUTE


def test_order_rules_other_than_transitions() -> None:
    later, earlier = T0 + dt.timedelta(seconds=1), T0 - dt.timedelta(seconds=1)
    assert decide_order(None, Ev("p", "u1", "paid", later))[0] is Outcome.NOT_FOUND
    assert decide_order(order("created"), Ev("p", "u2", "paid", later))[0] is Outcome.USER_MISMATCH
    assert decide_order(order("paid"), Ev("p", "u1", "pending", earlier))[0] is Outcome.STALE
    assert decide_order(order("created", None), Ev("p", "u1", "paid", earlier))[0] is Outcome.APPLIED


def test_dispute_creation_rules() -> None:
    opened = Ev("p", "u1", "opened", T0)
    assert decide_dispute(None, opened, None)[0] is Outcome.NOT_FOUND  # order missing
    assert decide_dispute(None, Ev("p", "u1", "won", T0), "u1")[0] is Outcome.NOT_FOUND  # must start opened
    assert decide_dispute(None, opened, "u2")[0] is Outcome.USER_MISMATCH
    outcome, state = decide_dispute(None, opened, "u1")
    assert outcome is Outcome.APPLIED and state == EntityState("d1", "u1", "opened", T0, "o1")
    assert decide_dispute(dispute("opened"), Ev("p", "u1", "won", T0, order_id="o2"), "u1")[0] is Outcome.USER_MISMATCH


def test_plan_threads_state_and_detects_duplicates_in_and_before_the_batch() -> None:
    events = [
        Ev("e1", "u1", "authorized", T0 + dt.timedelta(seconds=1)),
        Ev("e1", "u1", "authorized", T0 + dt.timedelta(seconds=1)),  # again in the batch
        Ev("e0", "u1", "paid", T0 + dt.timedelta(seconds=2)),  # stored before
        Ev("e2", "u1", "pending", T0 + dt.timedelta(seconds=3)),  # authorized -> pending: invalid
        Ev("e3", "u1", "created", T0),  # older than the last applied: stale
        Ev("e4", "u1", "paid", T0 + dt.timedelta(seconds=4)),
    ]
    plan = plan_batch(events, {"o1": order("created")}, [("o1", "e0")], lambda e: e.order_id, decide_order)
    assert plan.outcomes == [Outcome.APPLIED, Outcome.DUPLICATE, Outcome.DUPLICATE, Outcome.INVALID_TRANSITION,
                             Outcome.STALE, Outcome.APPLIED]
    assert [(e.provider_event_id, applied) for e, applied in plan.inserts] == [("e1", True), ("e3", False),
                                                                              ("e4", True)]
    assert plan.states["o1"].status == "paid" and plan.created == set()


statuses = st.sampled_from(ORDER_STATUSES[1:])
event_lists = st.lists(
    st.builds(Ev, provider_event_id=st.sampled_from(["a", "b", "c", "d", "e", "f"]),
              user_id=st.sampled_from(["u1", "u1", "u1", "u2"]), status=statuses,
              occurred_at=st.integers(0, 10).map(lambda s: T0 + dt.timedelta(seconds=s))),
    max_size=12,
)


@given(event_lists)
def test_batch_equals_one_event_at_a_time(events: list[Ev]) -> None:
    """Planning a batch gives the same outcomes as applying its events one by one."""
    whole = plan_batch(events, {"o1": order("created", None)}, [], lambda e: e.order_id, decide_order)
    states, stored, outcomes = {"o1": order("created", None)}, [], []
    for event in events:
        single = plan_batch([event], states, stored, lambda e: e.order_id, decide_order)
        outcomes += single.outcomes
        states.update(single.states)
        stored += [(e.order_id, e.provider_event_id) for e, _ in single.inserts]
    assert whole.outcomes == outcomes
    assert whole.states.get("o1", order("created", None)) == states["o1"]


@given(event_lists)
def test_state_only_moves_along_the_table(events: list[Ev]) -> None:
    plan = plan_batch(events, {"o1": order("created", None)}, [], lambda e: e.order_id, decide_order)
    final = plan.states.get("o1", order("created", None)).status
    applied = [e.status for e, applied in plan.inserts if applied]
    path = ["created", *applied]
    assert all(b == a or b in ORDER_TRANSITIONS[a] for a, b in itertools.pairwise(path))
    assert final == path[-1]
