"""Which offset of a partition may be committed: the end of the contiguous done prefix.

Records of a partition arrive in offset order but finish in any order (batches,
retries). Committing position N tells Kafka "everything below N is done", so the
position is the lowest offset still pending — or, with nothing pending, one past
the highest offset seen. Offsets that never arrive (gaps) cannot hold it back.
Pure: no I/O, no clock.
"""

from __future__ import annotations


class OffsetTracker:
    def __init__(self) -> None:
        self._pending: set[int] = set()
        self._highest: int | None = None
        self._committed: int | None = None

    def received(self, offset: int) -> None:
        self._pending.add(offset)
        self._highest = offset if self._highest is None else max(self._highest, offset)

    def done(self, offset: int) -> None:
        self._pending.discard(offset)

    def position(self) -> int | None:
        """The offset to commit: everything below it is done."""
        if self._pending:
            return min(self._pending)
        return None if self._highest is None else self._highest + 1

    def commit_position(self) -> int | None:
        """``position()`` if it moved since the last ``committed()``, else None."""
        position = self.position()
        return None if position is None or position == self._committed else position

    def committed(self, position: int) -> None:
        self._committed = position

    @property
    def in_flight(self) -> int:
        return len(self._pending)
