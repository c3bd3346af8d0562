from hypothesis import given
from hypothesis import strategies as st

from workers.offset_tracker import OffsetTracker


def test_commits_only_the_contiguous_done_prefix() -> None:
    tracker = OffsetTracker()
    assert tracker.commit_position() is None
    for offset in range(10, 15):
        tracker.received(offset)
    tracker.done(11)
    tracker.done(12)
    assert tracker.commit_position() == 10  # 10 is still pending
    tracker.done(10)
    assert tracker.commit_position() == 13
    tracker.committed(13)
    assert tracker.commit_position() is None  # nothing new
    tracker.done(14)
    tracker.done(13)
    assert tracker.commit_position() == 15 and tracker.in_flight == 0


def test_gaps_do_not_hold_the_position_back() -> None:
    tracker = OffsetTracker()
    for offset in (3, 4, 7):  # 5 and 6 never arrive
        tracker.received(offset)
        tracker.done(offset)
    assert tracker.commit_position() == 8


@given(st.permutations(list(range(20))), st.integers(0, 20))
def test_position_is_never_past_an_unfinished_offset(finish_order: list[int], finished: int) -> None:
    tracker = OffsetTracker()
    for offset in range(20):
        tracker.received(offset)
    done = set(finish_order[:finished])
    for offset in finish_order[:finished]:
        tracker.done(offset)
    position = tracker.position()
    assert position is not None
    assert all(offset in done for offset in range(position))
    assert position == 20 or position not in done
