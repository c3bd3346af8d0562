"""The consumer of one topic: a poll loop, one ``PartitionActor`` per assigned partition.

The blocking ``consume()`` runs in a worker thread with a short timeout, so the trio
loop never blocks; records are handed to the actors' mailboxes without waiting. A
full mailbox pauses its partition (records already fetched wait in a small backlog)
and a drained one resumes it — the poll loop keeps polling, so the consumer stays in
its group. Rebalance callbacks arrive in the poll thread and call back into trio: an
assigned partition gets a new actor; a revoked one has its mailbox closed, is drained
within a deadline, and its done prefix is committed before the partition moves on.
Done prefixes are also committed every ``COMMIT_INTERVAL_SECONDS``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import trio
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from shared.logs import get_logger
from workers.batch_writer import ShardedBatchWriter
from workers.metrics import ASSIGNED, CONSUMER_LAG
from workers.offset_tracker import OffsetTracker
from workers.partition_actor import PartitionActor
from workers.records import Record

log = get_logger(__name__)
POLL_TIMEOUT_SECONDS = 0.2  # a consume() in a thread cannot be cancelled: keep it short
POLL_BATCH = 1000
COMMIT_INTERVAL_SECONDS = 1.0
REVOKE_DEADLINE_SECONDS = 10.0


@dataclass(frozen=True)
class ConsumerConfig:
    bootstrap_servers: str
    session_timeout_seconds: float = 10.0
    mailbox_size: int = 2000
    max_batch: int = 1000

    def librdkafka(self, group: str) -> dict[str, object]:
        session_ms = int(self.session_timeout_seconds * 1000)
        return {"bootstrap.servers": self.bootstrap_servers, "group.id": group, "enable.auto.commit": False,
                "auto.offset.reset": "earliest", "session.timeout.ms": session_ms,
                "heartbeat.interval.ms": max(100, session_ms // 4), "enable.partition.eof": False,
                # a fetch the broker parks for want of data returns within 50 ms, not 500: this bounds
                # the latency of a record that arrives while the fetch is parked (tansu does not wake it)
                "fetch.wait.max.ms": 50}


@dataclass
class _Partition:
    number: int
    mailbox: trio.MemorySendChannel[Record]
    tracker: OffsetTracker = field(default_factory=OffsetTracker)
    backlog: deque[Record] = field(default_factory=deque)
    paused: bool = False
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    finished: trio.Event = field(default_factory=trio.Event)


class TopicConsumer:
    def __init__(self, topic: str, schema: type, config: ConsumerConfig, writer: ShardedBatchWriter,
                 send_dead_letter) -> None:  # noqa: ANN001 - Callable[[DeadLetter], Awaitable[None]]
        self._topic, self._schema, self._config = topic, schema, config
        self._writer = writer
        self._send_dead_letter = send_dead_letter
        self._consumer = Consumer(config.librdkafka(group=topic))
        self._partitions: dict[int, _Partition] = {}
        self._actors: trio.Nursery | None = None

    @property
    def assigned(self) -> list[int]:
        return sorted(self._partitions)

    async def run(self, stop: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Consume until ``stop`` is set; then drain, commit and leave the group."""
        try:
            async with trio.open_nursery() as actors:
                self._actors = actors
                self._consumer.subscribe([self._topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                         on_lost=self._on_revoke)
                task_status.started()
                await self._poll_until(stop)
                offsets = await self._revoke(list(self._partitions))
                if offsets:
                    await trio.to_thread.run_sync(self._commit_sync, offsets)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._consumer.close)  # leaves the group at once

    async def _poll_until(self, stop: trio.Event) -> None:
        next_commit = trio.current_time() + COMMIT_INTERVAL_SECONDS
        while not stop.is_set():
            messages = await trio.to_thread.run_sync(self._fetch)
            for message in messages:
                self._dispatch(message)
            self._relieve_backpressure()
            if trio.current_time() >= next_commit:
                self._commit_done_prefixes()
                next_commit = trio.current_time() + COMMIT_INTERVAL_SECONDS

    def _fetch(self) -> list[Message]:
        """Wait (briefly) for one record, then take what is already there without waiting.

        ``consume(n, timeout)`` alone waits until n records or the timeout, which
        would add the whole timeout to every record's latency at low rates.
        """
        first = self._consumer.poll(POLL_TIMEOUT_SECONDS)
        if first is None:
            return []
        return [first, *self._consumer.consume(POLL_BATCH - 1, 0)]

    # --- records into mailboxes -------------------------------------------------------

    def _dispatch(self, message: Message) -> None:
        if message.error() is not None:
            if message.error().code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error", topic=self._topic, error=message.error().str())
            return
        part = self._partitions.get(message.partition())
        if part is None:
            return  # revoked meanwhile: the new owner reads it from the committed offset
        record = Record.from_message(message)
        part.tracker.received(record.offset)
        if part.backlog:
            part.backlog.append(record)
            return
        try:
            part.mailbox.send_nowait(record)
        except trio.WouldBlock:
            part.backlog.append(record)
            self._consumer.pause([TopicPartition(self._topic, part.number)])
            part.paused = True

    def _relieve_backpressure(self) -> None:
        for part in self._partitions.values():
            if not part.paused:
                continue
            while part.backlog:
                try:
                    part.mailbox.send_nowait(part.backlog[0])
                except trio.WouldBlock:
                    break
                part.backlog.popleft()
            low_water = self._config.mailbox_size // 2
            if not part.backlog and part.mailbox.statistics().current_buffer_used <= low_water:
                self._consumer.resume([TopicPartition(self._topic, part.number)])
                part.paused = False

    # --- offsets ----------------------------------------------------------------------

    def _commit_done_prefixes(self) -> None:
        offsets = []
        for part in self._partitions.values():
            position = part.tracker.commit_position()
            if position is not None:
                offsets.append(TopicPartition(self._topic, part.number, position))
                part.tracker.committed(position)
            self._report_lag(part)
        if offsets:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as exc:  # the next interval commits a later position anyway
                log.warning("commit failed", topic=self._topic, error=str(exc))

    def _commit_sync(self, offsets: list[TopicPartition]) -> None:
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            log.warning("commit failed", topic=self._topic, error=str(exc))

    def _report_lag(self, part: _Partition) -> None:
        try:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(self._topic, part.number), cached=True)
        except KafkaException:
            return
        position = part.tracker.position()
        if high >= 0 and position is not None:
            CONSUMER_LAG.labels(self._topic, str(part.number)).set(max(0, high - position))

    # --- rebalances (callbacks run in the poll thread) ---------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        trio.from_thread.run_sync(self._assign, [p.partition for p in partitions])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        offsets = trio.from_thread.run(self._revoke, [p.partition for p in partitions])
        if offsets:
            self._commit_sync(offsets)  # before the partitions go to their next owner

    def _assign(self, numbers: list[int]) -> None:
        assert self._actors is not None
        for number in numbers:
            send, receive = trio.open_memory_channel[Record](self._config.mailbox_size)
            part = _Partition(number, send)
            self._partitions[number] = part
            actor = PartitionActor(self._topic, number, self._schema, receive, part.tracker, self._writer,
                                   self._send_dead_letter, max_batch=self._config.max_batch)
            self._actors.start_soon(self._run_actor, part, actor)
        ASSIGNED.labels(self._topic).set(len(self._partitions))
        log.info("partitions assigned", topic=self._topic, partitions=numbers)

    async def _run_actor(self, part: _Partition, actor: PartitionActor) -> None:
        try:
            with part.scope:
                await actor.run()
        finally:
            part.finished.set()

    async def _revoke(self, numbers: list[int]) -> list[TopicPartition]:
        """Close the mailboxes, let the actors drain (with a deadline); the positions to commit."""
        parts = [self._partitions.pop(n) for n in numbers if n in self._partitions]
        for part in parts:
            part.backlog.clear()  # never handed to the actor: the next owner reads them again
            part.mailbox.close()
        with trio.move_on_after(REVOKE_DEADLINE_SECONDS):
            for part in parts:
                await part.finished.wait()
        for part in parts:
            part.scope.cancel()  # past the deadline: unfinished offsets stay uncommitted
            await part.finished.wait()
        ASSIGNED.labels(self._topic).set(len(self._partitions))
        if parts:
            log.info("partitions revoked", topic=self._topic, partitions=[p.number for p in parts])
        return [TopicPartition(self._topic, p.number, pos) for p in parts
                if (pos := p.tracker.position()) is not None]
