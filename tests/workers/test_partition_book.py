"""PartitionBook and RetryLanes: the pure rules behind pause, commit, stalls and per-user retries."""

from __future__ import annotations

import pytest

from shared.domain import Outcome
from workers.partition_book import Flow, PartitionBook
from workers.records import Record
from workers.retry_lanes import LanePolicy, RetryLanes


def record(offset: int) -> Record:
    return Record("t", 0, offset, b"k", b"v", [])


def test_a_backlog_pauses_and_a_drained_mailbox_resumes() -> None:
    book = PartitionBook(0, low_water=2, started_at=0.0)
    for offset in range(3):
        book.arrive(record(offset), 0.0)
    book.backlog.popleft()  # the mailbox took one, then was full
    assert book.flow(mailbox_depth=4) is Flow.PAUSE and book.paused
    assert book.flow(mailbox_depth=4) is None  # paused once, not again
    book.backlog.clear()  # the mailbox took the rest
    assert book.flow(mailbox_depth=3) is None  # above low water: stay paused
    assert book.flow(mailbox_depth=2) is Flow.RESUME and not book.paused


def test_a_position_is_due_until_the_broker_confirms_it() -> None:
    book = PartitionBook(0, low_water=2, started_at=0.0)
    assert book.commit_due() is None  # nothing received
    for offset in (5, 6, 7):
        book.arrive(record(offset), 0.0)
    book.tracker.done(6)
    assert book.commit_due() == 5  # 5 is pending: nothing past it
    book.tracker.done(5)
    assert book.commit_due() == 7
    assert book.commit_due() == 7  # a failed commit confirms nothing: still due
    book.confirm(7)
    assert book.commit_due() is None
    book.tracker.done(7)
    assert book.commit_due() == 8


@pytest.mark.parametrize(("paused", "depth", "lag", "idle_for", "expected"), [
    (True, 0, 0, 0.0, "paused with an empty mailbox"),
    (False, 0, 5, 30.0, "has a lag of 5 but nothing arrived for 30 s"),
    (False, 0, 5, 29.0, None),  # not long enough
    (False, 3, 5, 60.0, None),  # the actor has work: busy, not stalled
    (False, 0, 0, 60.0, None),  # idle and caught up
])
def test_stalls(paused: bool, depth: int, lag: int, idle_for: float, expected: str | None) -> None:
    book = PartitionBook(0, low_water=2, started_at=100.0)
    book.paused = paused
    problem = book.stall(100.0 + idle_for, lag, depth, stall_seconds=30.0)
    assert (problem is None) if expected is None else (expected in (problem or ""))


def test_lag_counts_from_the_committed_offset_until_records_arrive() -> None:
    book = PartitionBook(0, low_water=2, started_at=0.0)
    assert book.lag(committed=40, high=50) == 10
    assert book.lag(committed=None, high=50) == 50
    book.arrive(record(45), 0.0)
    assert book.lag(committed=40, high=50) == 5


POLICY = LanePolicy(window_seconds=5.0, first_delay_seconds=0.2, max_delay_seconds=2.0)


def test_a_lane_is_retried_with_doubling_delays_within_its_window() -> None:
    lanes: RetryLanes[str] = RetryLanes(POLICY)
    lanes.add("u", "e1", 0.0, tried=True)
    due_times = []
    now = 0.0
    while lanes.holds("u"):
        now = lanes.next_due()
        due_times.append(round(now, 3))
        result = lanes.retried([(entry, Outcome.NOT_FOUND) for entry in lanes.due(now)], now)
    assert due_times == [0.2, 0.6, 1.4, 3.0, 5.0]  # 0.2, +0.4, +0.8, +1.6, then the window's end
    assert [entry.item for entry in result.expired] == ["e1"] and result.expired[0].tries == 6


def test_a_users_later_events_wait_behind_and_move_on_when_the_head_expires() -> None:
    lanes: RetryLanes[str] = RetryLanes(POLICY)
    lanes.add("u", "head", 0.0, tried=True)
    lanes.add("u", "next", 1.0, tried=False)
    lanes.add("v", "other", 1.0, tried=True)
    assert lanes.depth == 3 and lanes.holds("u") and not lanes.holds("w")
    result = lanes.retried([(e, Outcome.NOT_FOUND) for e in lanes.due(5.0)], 5.0)
    assert [e.item for e in result.expired] == ["head"]  # v's event entered at 1.0: still in its window
    assert lanes.next_due() == 5.0  # "next" was never tried: at once
    result = lanes.retried([(e, Outcome.APPLIED) for e in lanes.due(5.0) if e.user == "u"], 5.0)
    assert [(e.item, o) for e, o in result.settled] == [("next", Outcome.APPLIED)]
    assert not lanes.holds("u") and lanes.holds("v")


def test_a_lane_moves_one_event_at_a_time_once_its_head_is_found() -> None:
    lanes: RetryLanes[str] = RetryLanes(POLICY)
    for index, item in enumerate(["a", "b", "c"]):
        lanes.add("u", item, 0.0, tried=index == 0)
    settled = []
    for outcome in (Outcome.APPLIED, Outcome.INVALID_TRANSITION, Outcome.DUPLICATE):
        (head,) = lanes.due(0.2)  # only the head is tried: a lane costs one row per event in all
        settled += [(e.item, o) for e, o in lanes.retried([(head, outcome)], 0.2).settled]
    assert settled == [("a", Outcome.APPLIED), ("b", Outcome.INVALID_TRANSITION), ("c", Outcome.DUPLICATE)]
    assert lanes.depth == 0 and lanes.next_due() is None


def test_lanes_are_full_at_their_bound() -> None:
    lanes: RetryLanes[str] = RetryLanes(LanePolicy(max_events=2))
    lanes.add("u", "a", 0.0, tried=True)
    assert not lanes.full
    lanes.add("v", "b", 0.0, tried=True)
    assert lanes.full
