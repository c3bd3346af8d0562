"""An in-memory Kafka topic with a consumer group, on trio's clock (the fake behind ``ConsumerClient``).

It copies librdkafka's behaviour where our logic depends on it:
- rebalance callbacks are delivered inside ``fetch``, in order; a partition reaches its
  new owner only after its old owner's revoke callback has returned (eager: every member
  revokes everything first; cooperative-sticky: only the partitions that move);
- an application pause survives revoke → assign, exactly as librdkafka keeps it;
- a lost partition is reported as lost and handed on without waiting for its old owner;
- a member commits only partitions it owns; commits can be made to fail or to hang.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import trio
import trio.lowlevel

from workers.consumer_client import CommitResult, PartitionOffsets, RebalanceListener
from workers.records import Record

POLL_SECONDS = 0.2


@dataclass
class _Op:
    kind: str  # "assigned", "revoked" or "lost"
    partitions: list[int]
    after: list[trio.Event]  # delivered only once these revokes have been served
    done: trio.Event = field(default_factory=trio.Event)


class FakeBroker:
    def __init__(self, topic: str, partitions: int, *, cooperative: bool = False) -> None:
        self.topic, self.cooperative = topic, cooperative
        self.logs: dict[int, list[Record]] = {p: [] for p in range(partitions)}
        self.committed: dict[int, int] = {}
        self.commits: list[tuple[str, dict[int, int]]] = []  # (member, offsets) the broker accepted
        self.failing_commits = 0  # the next N commit requests fail as a whole
        self.commit_latency_seconds = 0.0
        self.members: list[FakeConsumer] = []
        self._changed = trio.Event()

    def consumer(self, name: str) -> FakeConsumer:
        return FakeConsumer(self, name)

    def produce(self, partition: int, key: bytes, value: bytes) -> Record:
        log = self.logs[partition]
        record = Record(self.topic, partition, len(log), key, value, [])
        log.append(record)
        self.wake()
        return record

    def end_offsets(self) -> dict[int, int]:
        return {p: len(log) for p, log in self.logs.items()}

    def wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    # --- membership -----------------------------------------------------------------

    def join(self, member: FakeConsumer) -> None:
        self.members.append(member)
        self._rebalance()

    def leave(self, member: FakeConsumer) -> None:
        if member in self.members:
            self.members.remove(member)
            member.planned = set()
            member.abandon_ops()
            self._rebalance()

    def expire(self, member: FakeConsumer) -> None:
        """The member's session timed out: its partitions are lost to it and handed on at once."""
        self.members.remove(member)
        member.queue(_Op("lost", sorted(member.planned), []))
        member.planned = set()
        self._rebalance()

    def _rebalance(self) -> None:
        target = self._sticky_targets() if self.cooperative else self._range_targets()
        revokes: list[trio.Event] = []
        for member in self.members:
            moved = member.planned - target[member.name] if self.cooperative else member.planned
            if moved:
                op = _Op("revoked", sorted(moved), [])
                member.queue(op)
                revokes.append(op.done)
        for member in self.members:
            added = target[member.name] - member.planned if self.cooperative else target[member.name]
            if added or not self.cooperative:
                member.queue(_Op("assigned", sorted(added), list(revokes)))
            member.planned = set(target[member.name])
        self.wake()

    def _range_targets(self) -> dict[str, set[int]]:
        names = sorted(m.name for m in self.members)
        partitions = sorted(self.logs)
        share, extra = divmod(len(partitions), max(1, len(names)))
        targets, start = {}, 0
        for index, name in enumerate(names):
            count = share + (index < extra)
            targets[name] = set(partitions[start:start + count])
            start += count
        return targets

    def _sticky_targets(self) -> dict[str, set[int]]:
        """Members keep what they own up to their fair share; the rest goes to those below it."""
        names = sorted(m.name for m in self.members)
        if not names:
            return {}
        quota = -(-len(self.logs) // len(names))
        targets = {m.name: set(sorted(m.planned)[:quota]) for m in self.members}
        free = sorted(set(self.logs) - set().union(*targets.values()))
        for partition in free:
            name = min(names, key=lambda n: (len(targets[n]), n))
            targets[name].add(partition)
        return targets


class FakeConsumer:
    """One group member: ``ConsumerClient`` over ``FakeBroker``."""

    def __init__(self, broker: FakeBroker, name: str) -> None:
        self.broker, self.name = broker, name
        self.planned: set[int] = set()  # what the broker's last rebalance gave it
        self.assignment: set[int] = set()  # what its callbacks have been told
        self.paused: set[int] = set()  # never cleared by a rebalance: librdkafka keeps it
        self.positions: dict[int, int] = {}
        self.closed = False
        self._ops: deque[_Op] = deque()
        self._listener: RebalanceListener | None = None

    def queue(self, op: _Op) -> None:
        self._ops.append(op)

    def abandon_ops(self) -> None:
        for op in self._ops:
            op.done.set()
        self._ops.clear()

    def subscribe(self, listener: RebalanceListener) -> None:
        self._listener = listener
        self.broker.join(self)

    async def fetch(self, max_records: int) -> list[Record]:
        await self._serve_ops()
        records = self._take(max_records)
        if records:
            return records
        with trio.move_on_after(POLL_SECONDS):
            await self.broker.wait_changed()
        await self._serve_ops()
        return self._take(max_records)

    async def _serve_ops(self) -> None:
        while self._ops:
            op = self._ops[0]
            for revoke in op.after:
                await revoke.wait()
            assert self._listener is not None
            await getattr(self._listener, op.kind)(op.partitions)
            if op.kind == "assigned":
                self.assignment |= set(op.partitions)
                for partition in op.partitions:
                    self.positions[partition] = self.broker.committed.get(partition, 0)
            else:
                self.assignment -= set(op.partitions)
            op.done.set()
            if self._ops and self._ops[0] is op:
                self._ops.popleft()
            self.broker.wake()

    def _take(self, max_records: int) -> list[Record]:
        taken: list[Record] = []
        for partition in sorted(self.assignment - self.paused):
            log = self.broker.logs[partition]
            position = self.positions[partition]
            batch = log[position:position + max_records - len(taken)]
            self.positions[partition] = position + len(batch)
            taken += batch
        return taken

    def pause(self, partitions: list[int]) -> None:
        self.paused |= set(partitions)

    def resume(self, partitions: list[int]) -> None:
        self.paused -= set(partitions)
        self.broker.wake()

    async def commit(self, offsets: dict[int, int]) -> CommitResult:
        await trio.sleep(self.broker.commit_latency_seconds)
        if self.broker.failing_commits:
            self.broker.failing_commits -= 1
            return {partition: "REQUEST_TIMED_OUT" for partition in offsets}
        result: CommitResult = {}
        for partition, offset in offsets.items():
            if partition in self.assignment and not self.closed:
                self.broker.committed[partition] = offset
                result[partition] = None
            else:
                result[partition] = "ILLEGAL_GENERATION"
        accepted = {p: offsets[p] for p, error in result.items() if error is None}
        if accepted:
            self.broker.commits.append((self.name, accepted))
        return result

    async def offsets(self, partitions: list[int]) -> dict[int, PartitionOffsets]:
        await trio.lowlevel.checkpoint()
        return {p: PartitionOffsets(self.broker.committed.get(p), len(self.broker.logs[p])) for p in partitions}

    async def close(self) -> None:
        await trio.lowlevel.checkpoint()
        self.closed = True
        self.assignment = set()
        self.broker.leave(self)
