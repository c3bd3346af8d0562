"""Per-user retry lanes: an event whose order is not known yet waits, and so does its user.

A webhook can arrive before the order it is about (``POST /orders`` racing the
provider). Holding the whole partition for it would stall every other user, so
the event goes into its user's lane; that user's later events queue behind it
(per-user order holds), everyone else's keep flowing. A lane is retried with
doubling delays; each event has its own window from the moment it entered the
lane, and a head still not found once its window is over is given up (the caller
dead-letters it as ``not_found``) and the lane moves on at once.

Pure: no trio, no clock of its own — ``now`` comes in as a number.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

from shared.domain import Outcome

T = TypeVar("T")
WAITING = frozenset({Outcome.NOT_FOUND, Outcome.DEFERRED})


@dataclass(eq=False)  # identity: two entries are never the same entry
class LaneEntry(Generic[T]):
    user: str
    item: T
    since: float  # entered the lane: its window starts here
    tries: int  # times it was applied and not found


@dataclass(frozen=True)
class LanePolicy:
    window_seconds: float = 5.0
    first_delay_seconds: float = 0.2
    max_delay_seconds: float = 2.0
    max_events: int = 1000  # the lanes of one partition hold at most this many: then its mailbox fills


@dataclass
class _Lane(Generic[T]):
    entries: deque[LaneEntry[T]]
    due_at: float
    retries: int = 0


@dataclass(frozen=True)
class RetryResult(Generic[T]):
    settled: list[tuple[LaneEntry[T], Outcome | str]]  # final outcomes, in lane order
    expired: list[LaneEntry[T]]  # not found after their window: dead letters


class RetryLanes(Generic[T]):
    def __init__(self, policy: LanePolicy) -> None:
        self._policy = policy
        self._lanes: dict[str, _Lane[T]] = {}

    @property
    def depth(self) -> int:
        return sum(len(lane.entries) for lane in self._lanes.values())

    def holds(self, user: str) -> bool:
        return user in self._lanes

    def add(self, user: str, item: T, now: float, *, tried: bool) -> None:
        """Queue ``item`` at the end of its user's lane (opening it: first retry after the first delay)."""
        lane = self._lanes.get(user)
        if lane is None:
            lane = self._lanes[user] = _Lane(deque(), now + self._policy.first_delay_seconds)
        lane.entries.append(LaneEntry(user, item, now, int(tried)))

    def next_due(self) -> float | None:
        return min((lane.due_at for lane in self._lanes.values()), default=None)

    @property
    def full(self) -> bool:
        return self.depth >= self._policy.max_events

    def due(self, now: float) -> list[LaneEntry[T]]:
        """The head of every lane whose retry is due: a lane moves one event at a time, so N events
        behind an unknown order cost N rows in all, not N rounds of the whole lane."""
        return [lane.entries[0] for lane in self._lanes.values() if lane.due_at <= now]

    def retried(self, results: list[tuple[LaneEntry[T], Outcome | str]], now: float) -> RetryResult[T]:
        """Fold in the outcomes of retrying ``due(now)``: what is settled, what expired, what waits on."""
        settled: list[tuple[LaneEntry[T], Outcome | str]] = []
        expired: list[LaneEntry[T]] = []
        for entry, outcome in results:
            lane = self._lanes[entry.user]
            if outcome not in WAITING:
                settled.append((entry, outcome))
                lane.entries.remove(entry)
            elif outcome is Outcome.NOT_FOUND:
                entry.tries += 1
                if now >= entry.since + self._policy.window_seconds and entry is lane.entries[0]:
                    expired.append(entry)
                    lane.entries.popleft()
        for user in {entry.user for entry, _ in results}:
            self._reschedule(user, now)
        return RetryResult(settled, expired)

    def _reschedule(self, user: str, now: float) -> None:
        lane = self._lanes[user]
        if not lane.entries:
            del self._lanes[user]
            return
        head = lane.entries[0]
        if head.tries == 0:  # the head was never tried (its predecessor just expired or applied): now
            lane.due_at, lane.retries = now, 0
            return
        lane.retries += 1
        delay = min(self._policy.first_delay_seconds * 2 ** lane.retries, self._policy.max_delay_seconds)
        lane.due_at = min(now + delay, max(now, head.since + self._policy.window_seconds))
