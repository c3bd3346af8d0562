"""One assigned partition's bookkeeping: offsets, backlog and pause, committed position, stalls.

Everything ``TopicConsumer`` must remember about a partition, and every decision
it takes from that memory, lives here as plain data and functions — no trio, no
Kafka, time passed in as a number — so the pause, commit and stall rules are
tested without I/O, like ``shared/domain.py``:

- every fetched record enters the backlog; the consumer moves what fits into the
  actor's mailbox; a backlog left over pauses the partition, and it resumes once
  the backlog is empty and the mailbox is down to its low-water mark;
- a position is *confirmed* only when the broker said so; until then it is due
  again at every commit tick, idle or not;
- a partition is *stalled* when the broker holds records it has not handed us for
  a while (lag, an empty mailbox, no progress): the alert for a stranded pause.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from workers.offset_tracker import OffsetTracker
from workers.records import Record


class Flow(enum.Enum):
    PAUSE = "pause"
    RESUME = "resume"


@dataclass
class PartitionBook:
    number: int
    low_water: int  # mailbox depth at or below which a paused partition resumes
    started_at: float  # when the partition was assigned (progress is measured from there)
    tracker: OffsetTracker = field(default_factory=OffsetTracker)
    backlog: deque[Record] = field(default_factory=deque)
    paused: bool = False
    confirmed: int | None = None  # the last position the broker confirmed as committed
    _progress_at: float = 0.0
    _last_position: int | None = None

    def __post_init__(self) -> None:
        self._progress_at = self.started_at

    def arrive(self, record: Record, now: float) -> None:
        """A fetched record: pending until done, waiting in the backlog until the mailbox takes it."""
        self.tracker.received(record.offset)
        self.backlog.append(record)
        self._progress_at = now

    def flow(self, mailbox_depth: int) -> Flow | None:
        """Pause while records wait outside the mailbox; resume once it has drained to low water."""
        if self.backlog and not self.paused:
            self.paused = True
            return Flow.PAUSE
        if self.paused and not self.backlog and mailbox_depth <= self.low_water:
            self.paused = False
            return Flow.RESUME
        return None

    def commit_due(self) -> int | None:
        """The done prefix's end, unless the broker already confirmed exactly that."""
        position = self.tracker.position()
        return None if position is None or position == self.confirmed else position

    def confirm(self, position: int) -> None:
        self.confirmed = position

    def lag(self, committed: int | None, high: int) -> int:
        """Records the broker holds beyond what is done here (or committed, if nothing arrived yet)."""
        start = self.tracker.position()
        if start is None:
            start = committed if committed is not None and committed >= 0 else (self.confirmed or 0)
        return max(0, high - start)

    def stall(self, now: float, lag: int, mailbox_depth: int, stall_seconds: float) -> str | None:
        """Why this partition needs a human, if it does."""
        position = self.tracker.position()
        if position != self._last_position:
            self._last_position, self._progress_at = position, now
        idle = mailbox_depth == 0 and not self.backlog
        if self.paused and idle:
            return f"partition {self.number} is paused with an empty mailbox"
        if lag > 0 and idle and now - self._progress_at >= stall_seconds:
            return (f"partition {self.number} has a lag of {lag} but nothing arrived for "
                    f"{now - self._progress_at:.0f} s")
        return None
