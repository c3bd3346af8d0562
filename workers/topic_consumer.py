"""The consumer of one topic: a poll loop, one partition actor per assigned partition.

The loop fetches through a ``ConsumerClient`` (never blocking trio), puts each
record into its partition's book and moves what fits into the actor's mailbox; a
partition whose records do not fit is paused, and resumed once its mailbox has
drained (``PartitionBook``) — the loop keeps polling, so the consumer stays in its
group. Membership changes arrive as ``RebalanceListener`` calls inside ``fetch``:

- assigned: a fresh book and actor, and the partition resumed in the client too
  (librdkafka keeps an application pause across revoke → assign);
- revoked: the mailbox is closed, the actor drains within ``drain_seconds`` (then is
  cancelled), and the done prefix is committed synchronously before the broker
  hands the partition on;
- lost: the actor is cancelled at once and nothing is committed — another member
  may already own the partition.

Done prefixes are committed every ``commit_interval_seconds``; a position counts as
committed only once the broker confirmed it, so a failed commit is simply due again
at the next tick, idle or not. Every ``health_interval_seconds`` the broker's
offsets give the lag, and a partition that is paused with an empty mailbox or
lagging with no progress is reported in ``alerts`` (``/readyz``, ``/metrics``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field

import trio

from shared.logs import get_logger
from workers.consumer_client import ConsumerClient
from workers.metrics import (
    ASSIGNED,
    COMMIT_FAILURES,
    CONSUMER_LAG,
    MAILBOX_DEPTH,
    PAUSED,
    REBALANCES,
    STALLED,
    forget_partition,
)
from workers.offset_tracker import OffsetTracker
from workers.partition_book import Flow, PartitionBook
from workers.records import Record

log = get_logger(__name__)

# (partition, mailbox, tracker) -> runs until the mailbox is closed and drained
RunActor = Callable[[int, trio.MemoryReceiveChannel[Record], OffsetTracker], Awaitable[None]]


@dataclass(frozen=True)
class ConsumerTimings:
    """Deadlines and periods; ``for_grace`` derives them from ``SHUTDOWN_GRACE``."""

    drain_seconds: float = 5.0
    commit_seconds: float = 2.0
    close_seconds: float = 2.0
    commit_interval_seconds: float = 1.0
    health_interval_seconds: float = 5.0
    stall_seconds: float = 30.0

    @classmethod
    def for_grace(cls, grace_seconds: float) -> ConsumerTimings:
        """Drain, final commit and close fit inside the grace (half, a fifth, a fifth): SIGTERM's
        deadline never cancels the final commit."""
        return cls(drain_seconds=grace_seconds / 2, commit_seconds=grace_seconds / 5, close_seconds=grace_seconds / 5)


@dataclass
class _Partition:
    book: PartitionBook
    mailbox: trio.MemorySendChannel[Record]
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    finished: trio.Event = field(default_factory=trio.Event)


class TopicConsumer:
    def __init__(self, topic: str, client: ConsumerClient, run_actor: RunActor, *, mailbox_size: int,
                 fetch_max: int = 1000, timings: ConsumerTimings = ConsumerTimings(),
                 alerts: MutableMapping[str, list[str]] | None = None) -> None:
        self._topic, self._client, self._run_actor = topic, client, run_actor
        self._mailbox_size, self._fetch_max, self._timings = mailbox_size, fetch_max, timings
        self._alerts = alerts if alerts is not None else {}
        self._partitions: dict[int, _Partition] = {}
        self._actors: trio.Nursery | None = None
        self._drained_by = float("inf")  # once stopping: every drain ends by then, callbacks' included

    @property
    def partitions(self) -> list[int]:
        """The partitions this consumer owns now."""
        return sorted(self._partitions)

    def book(self, number: int) -> PartitionBook:
        return self._partitions[number].book

    async def run(self, stop: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Consume until ``stop`` is set; then drain, commit and leave the group."""
        try:
            async with trio.open_nursery() as actors:
                self._actors = actors
                actors.start_soon(self._note_stop, stop)
                self._client.subscribe(self)
                task_status.started()
                await self._poll_until(stop)
                await self.revoked(list(self._partitions))
        finally:
            self._alerts.pop(self._topic, None)
            for number in self._partitions:  # a crash: the next consumer starts afresh
                forget_partition(self._topic, number)
            PAUSED.labels(self._topic).set(0)
            ASSIGNED.labels(self._topic).set(0)
            with trio.CancelScope(shield=True), trio.move_on_after(self._timings.close_seconds):
                await self._client.close()  # leaves the group at once

    async def _note_stop(self, stop: trio.Event) -> None:
        """From SIGTERM on, all drains share one deadline: a revoke under way when it came (inside a
        rebalance callback) and the final one cannot add up past the grace."""
        await stop.wait()
        self._drained_by = trio.current_time() + self._timings.drain_seconds

    async def _poll_until(self, stop: trio.Event) -> None:
        now = trio.current_time()
        next_commit = now + self._timings.commit_interval_seconds
        next_health = now + self._timings.health_interval_seconds
        while not stop.is_set():
            records = await self._client.fetch(self._fetch_max)
            now = trio.current_time()
            for record in records:
                part = self._partitions.get(record.partition)
                if part is not None:  # else revoked meanwhile: the next owner reads it from the committed offset
                    part.book.arrive(record, now)
            self._deliver()
            if now >= next_commit:
                await self._commit(list(self._partitions))
                next_commit = trio.current_time() + self._timings.commit_interval_seconds
            if now >= next_health:
                await self._check_health()
                next_health = trio.current_time() + self._timings.health_interval_seconds

    # --- records into mailboxes, pause and resume ----------------------------------------

    def _deliver(self) -> None:
        for part in self._partitions.values():
            book = part.book
            while book.backlog:
                try:
                    part.mailbox.send_nowait(book.backlog[0])
                except trio.WouldBlock:
                    break
                book.backlog.popleft()
            flow = book.flow(part.mailbox.statistics().current_buffer_used)
            if flow is Flow.PAUSE:
                self._client.pause([book.number])
            elif flow is Flow.RESUME:
                self._client.resume([book.number])
        PAUSED.labels(self._topic).set(sum(p.book.paused for p in self._partitions.values()))

    # --- offsets ----------------------------------------------------------------------

    async def _commit(self, numbers: list[int]) -> None:
        """Commit the due positions of ``numbers``; confirm each one the broker confirmed."""
        offsets = {n: position for n in numbers if (position := self._partitions[n].book.commit_due()) is not None}
        if not offsets:
            return
        results: dict[int, str | None] = {n: "no answer before the commit deadline" for n in offsets}
        with trio.move_on_after(self._timings.commit_seconds):
            results = await self._client.commit(offsets)
        for number, position in offsets.items():
            error = results.get(number, "not in the broker's answer")
            part = self._partitions.get(number)
            if error is None and part is not None:
                part.book.confirm(position)
            elif error is not None:
                COMMIT_FAILURES.labels(self._topic).inc()
                log.warning("commit failed; due again at the next tick", topic=self._topic, partition=number,
                            offset=position, error=error)

    async def _check_health(self) -> None:
        numbers = list(self._partitions)
        offsets = {}
        if not numbers:
            self._alerts[self._topic] = []
            STALLED.labels(self._topic).set(0)
            return
        with trio.move_on_after(self._timings.commit_seconds):
            offsets = await self._client.offsets(numbers)
        self._deliver()  # the actors drained meanwhile: read pause and depth as they are now
        now, problems = trio.current_time(), []
        for number, known in offsets.items():
            part = self._partitions.get(number)
            if part is None:
                continue
            lag = part.book.lag(known.committed, known.high)
            CONSUMER_LAG.labels(self._topic, str(number)).set(lag)
            depth = part.mailbox.statistics().current_buffer_used
            MAILBOX_DEPTH.labels(self._topic, str(number)).set(depth)
            problem = part.book.stall(now, lag, depth, self._timings.stall_seconds)
            if problem:
                problems.append(f"{self._topic}: {problem}")
        STALLED.labels(self._topic).set(len(problems))
        self._alerts[self._topic] = problems
        if problems:
            log.error("partition needs attention", topic=self._topic, problems=problems)

    # --- membership (RebalanceListener: called inside fetch) ---------------------------

    async def assigned(self, partitions: list[int]) -> None:
        assert self._actors is not None
        now = trio.current_time()
        new = [number for number in partitions if number not in self._partitions]
        for number in new:
            send, receive = trio.open_memory_channel[Record](self._mailbox_size)
            part = _Partition(PartitionBook(number, self._mailbox_size // 2, now), send)
            self._partitions[number] = part
            self._actors.start_soon(self._run, part, receive)
        self._client.resume(new)  # an owned partition keeps its state, its pause included
        self._membership_changed("assigned", new)

    async def revoked(self, partitions: list[int]) -> None:
        """Drain within the deadline, then commit what is done before the partitions move on."""
        parts = [self._partitions[n] for n in partitions if n in self._partitions]
        for part in parts:
            part.book.backlog.clear()  # never handed to the actor: the next owner reads them again
            part.mailbox.close()
        with trio.move_on_at(min(trio.current_time() + self._timings.drain_seconds, self._drained_by)):
            for part in parts:
                await part.finished.wait()
        for part in parts:
            part.scope.cancel()  # past the deadline: unfinished offsets stay uncommitted
            await part.finished.wait()
        await self._commit([p.book.number for p in parts])
        for part in parts:
            del self._partitions[part.book.number]
        self._membership_changed("revoked", [p.book.number for p in parts])

    async def lost(self, partitions: list[int]) -> None:
        """Another member may own them already: stop at once, commit nothing."""
        parts = [self._partitions.pop(n) for n in partitions if n in self._partitions]
        for part in parts:
            part.scope.cancel()
            part.mailbox.close()
        for part in parts:
            await part.finished.wait()
        self._membership_changed("lost", [p.book.number for p in parts])

    async def _run(self, part: _Partition, mailbox: trio.MemoryReceiveChannel[Record]) -> None:
        try:
            with part.scope:
                await self._run_actor(part.book.number, mailbox, part.book.tracker)
        finally:
            part.finished.set()

    def _membership_changed(self, kind: str, partitions: list[int]) -> None:
        if not partitions:
            return
        REBALANCES.labels(self._topic, kind).inc()
        if kind != "assigned":
            for number in partitions:
                forget_partition(self._topic, number)
        ASSIGNED.labels(self._topic).set(len(self._partitions))
        log.info(f"partitions {kind}", topic=self._topic, partitions=partitions)
