"""The consumer boundary: what ``TopicConsumer`` needs of Kafka, and its confluent-kafka adapter.

The interface is small so that the rebalance, pause and commit logic can be driven
by an in-memory broker on the autojump clock (``tests/workers/fake_broker.py``) as
well as by librdkafka. As in librdkafka, rebalance callbacks are delivered *inside*
``fetch`` and awaited there: a revoked partition is drained and committed before
the broker hands it to its next owner.

The adapter keeps librdkafka's blocking calls off the trio thread: ``fetch``,
``commit``, ``offsets`` and ``close`` run in a worker thread. While a rebalance
callback runs, librdkafka serves no other thread's calls on that consumer (a
``commit`` or ``resume`` from elsewhere blocks until the callback returns: measured
against tansu), so during a callback the listener runs in trio while the poll
thread stays in the callback and executes the listener's consumer calls itself.
The listener runs as a task of ``fetch``'s own nursery, so the caller's cancel
scopes (the SIGTERM deadline) reach it. One limit remains: a commit the poll thread
runs for a callback cannot be interrupted, and librdkafka's synchronous commit waits
up to ``session.timeout.ms`` for an unreachable coordinator; the callback returns then.

Blocking calls that overrun their caller's deadline are abandoned, not waited for;
the adapter has its own thread limiter, and starts no commit (or offsets query)
while an abandoned one is still running, so abandoned calls cannot pile up.
"""

from __future__ import annotations

import queue
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import outcome
import trio
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from shared.logs import get_logger
from shared.settings import Assignor
from workers.records import Record

T = TypeVar("T")
log = get_logger(__name__)
POLL_TIMEOUT_SECONDS = 0.2  # a poll in a thread cannot be cancelled: keep it short


class RebalanceListener(Protocol):
    async def assigned(self, partitions: list[int]) -> None: ...
    async def revoked(self, partitions: list[int]) -> None: ...
    async def lost(self, partitions: list[int]) -> None: ...


@dataclass(frozen=True)
class PartitionOffsets:
    committed: int | None  # the group's committed offset, None if it has none
    high: int  # the high watermark: one past the last record


# partition -> None when the broker confirmed the offset, else why it did not
CommitResult = dict[int, str | None]


class ConsumerClient(Protocol):
    def subscribe(self, listener: RebalanceListener) -> None: ...
    async def fetch(self, max_records: int) -> list[Record]:
        """Records of assigned, unpaused partitions; waits briefly for the first one."""
    def pause(self, partitions: list[int]) -> None: ...
    def resume(self, partitions: list[int]) -> None: ...
    async def commit(self, offsets: dict[int, int]) -> CommitResult:
        """Commit synchronously; the caller bounds it with a deadline."""
    async def offsets(self, partitions: list[int]) -> dict[int, PartitionOffsets]: ...
    async def close(self) -> None:
        """Leave the group at once."""


@dataclass(frozen=True)
class ConsumerConfig:
    bootstrap_servers: str
    session_timeout_seconds: float = 10.0
    assignor: Assignor = "range"

    def librdkafka(self, group: str) -> dict[str, object]:
        session_ms = int(self.session_timeout_seconds * 1000)
        return {"bootstrap.servers": self.bootstrap_servers, "group.id": group, "enable.auto.commit": False,
                "auto.offset.reset": "earliest", "session.timeout.ms": session_ms,
                "heartbeat.interval.ms": max(100, session_ms // 4), "enable.partition.eof": False,
                "partition.assignment.strategy": self.assignor,
                # a fetch the broker parks for want of data returns within 50 ms, not 500: this bounds
                # the latency of a record that arrives while the fetch is parked (tansu does not wake it)
                "fetch.wait.max.ms": 50}


class ConfluentConsumer:
    """``ConsumerClient`` over confluent-kafka, for one topic."""

    def __init__(self, topic: str, config: ConsumerConfig) -> None:
        self._topic = topic
        self._cooperative = config.assignor == "cooperative-sticky"
        self._consumer = Consumer(config.librdkafka(group=topic))
        self._listener: RebalanceListener | None = None
        self._in_callback: queue.SimpleQueue[Any] | None = None  # calls for the poll thread, during a callback
        self._callbacks: trio.Nursery | None = None  # fetch's nursery: where a callback's listener runs
        self._threads = trio.CapacityLimiter(4)  # fetch, close, and at most one commit and one offsets query
        self._running: set[str] = set()  # blocking calls still running in a thread (perhaps abandoned)

    def subscribe(self, listener: RebalanceListener) -> None:
        self._listener = listener
        self._consumer.subscribe([self._topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                 on_lost=self._on_lost)

    async def fetch(self, max_records: int) -> list[Record]:
        async with trio.open_nursery() as callbacks:
            self._callbacks = callbacks
            try:
                return await trio.to_thread.run_sync(self._fetch, max_records, limiter=self._threads)
            finally:
                self._callbacks = None

    def _fetch(self, max_records: int) -> list[Record]:
        """Wait (briefly) for one record, then take what is already there without waiting:
        ``consume(n, timeout)`` alone would add its whole timeout to every record at low rates."""
        first = self._consumer.poll(POLL_TIMEOUT_SECONDS)
        if first is None:
            return []
        messages = [first, *self._consumer.consume(max_records - 1, 0)] if max_records > 1 else [first]
        return [Record.from_message(m) for m in messages if self._usable(m)]

    def _usable(self, message: Message) -> bool:
        error = message.error()
        if error is not None and error.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error", topic=self._topic, error=error.str())
        return error is None

    def pause(self, partitions: list[int]) -> None:
        self._call_soon(self._consumer.pause, self._partitions(partitions))

    def resume(self, partitions: list[int]) -> None:
        self._call_soon(self._consumer.resume, self._partitions(partitions))

    async def commit(self, offsets: dict[int, int]) -> CommitResult:
        if "commit" in self._running:  # an abandoned commit has not returned yet
            return {number: "the previous commit is still waiting for the broker" for number in offsets}
        return await self._call_blocking("commit", self._commit, offsets)

    def _commit(self, offsets: dict[int, int]) -> CommitResult:
        wanted = [TopicPartition(self._topic, number, offset) for number, offset in offsets.items()]
        try:
            answered = self._consumer.commit(offsets=wanted, asynchronous=False)
        except KafkaException as exc:
            return {number: exc.args[0].str() if exc.args else str(exc) for number in offsets}
        return {tp.partition: (tp.error.str() if tp.error else None) for tp in answered or []}

    async def offsets(self, partitions: list[int]) -> dict[int, PartitionOffsets]:
        if "offsets" in self._running:
            return {}
        return await self._call_blocking("offsets", self._offsets, partitions)

    def _offsets(self, partitions: list[int]) -> dict[int, PartitionOffsets]:
        """The group's committed offsets and the high watermarks, from the broker (not the fetch cache:
        a paused partition is not fetched, so its cached watermark would never move)."""
        result = {}
        try:
            committed = {tp.partition: tp.offset for tp in self._consumer.committed(self._partitions(partitions), 2.0)}
            for number in partitions:
                _, high = self._consumer.get_watermark_offsets(TopicPartition(self._topic, number), 2.0, cached=False)
                offset = committed.get(number)
                result[number] = PartitionOffsets(offset if offset is not None and offset >= 0 else None, high)
        except KafkaException as exc:  # the broker is slow or away: no health reading this time
            log.info("offsets unavailable", topic=self._topic, error=str(exc))
        return result

    async def close(self) -> None:
        await trio.to_thread.run_sync(self._consumer.close, abandon_on_cancel=True, limiter=self._threads)

    def _partitions(self, numbers: list[int]) -> list[TopicPartition]:
        return [TopicPartition(self._topic, number) for number in numbers]

    def _call_soon(self, function: Callable[..., object], *args: object) -> None:
        """A quick call: now, or — inside a callback — by the poll thread, in order, before it returns."""
        calls = self._in_callback
        if calls is None:
            function(*args)
        else:
            calls.put((function, args, None))

    async def _call_blocking(self, name: str, function: Callable[..., T], *args: object) -> T:
        """A blocking call in a worker thread, or — inside a callback — by the poll thread; abandoned
        (not waited for) if the caller's deadline passes, and remembered as running until it returns."""
        def call() -> T:
            try:
                return function(*args)
            finally:
                self._running.discard(name)

        self._running.add(name)
        calls = self._in_callback
        if calls is None:
            return await trio.to_thread.run_sync(call, abandon_on_cancel=True, limiter=self._threads)
        reply: queue.SimpleQueue[outcome.Outcome[T]] = queue.SimpleQueue()
        calls.put((call, (), reply))
        return (await trio.to_thread.run_sync(reply.get, abandon_on_cancel=True, limiter=self._threads)).unwrap()

    # --- rebalance callbacks: in the poll thread, inside fetch (or close) ----------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Assign here rather than after the callback returns, so the listener's resume() acts
        # on assigned partitions: librdkafka keeps an application pause across revoke → assign.
        if self._cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
        self._call_listener(lambda listener: listener.assigned, partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._call_listener(lambda listener: listener.revoked, partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._call_listener(lambda listener: listener.lost, partitions)

    def _call_listener(self, method: Callable[[RebalanceListener], Callable[[list[int]], Awaitable[None]]],
                       partitions: list[TopicPartition]) -> None:
        """Run the listener in trio and, until it returns, serve its consumer calls on this thread."""
        if self._listener is None or not partitions:
            return
        listener, numbers = method(self._listener), [p.partition for p in partitions]
        calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        finished = object()

        async def run_listener() -> None:
            result: outcome.Outcome[object] = outcome.Value(None)
            try:
                await listener(numbers)
            except BaseException as exc:  # noqa: BLE001 - relayed to the poll thread, raised from poll()
                result = outcome.Error(exc)
                raise
            finally:
                calls.put((finished, (result,), None))

        self._in_callback = calls
        try:
            if not self._start_in_trio(run_listener):
                return  # close() abandoned at shutdown: nobody left to tell
            while True:
                function, args, reply = calls.get()
                if function is finished:
                    error = args[0]
                    if isinstance(error, outcome.Error) and not isinstance(error.error, trio.Cancelled):
                        error.unwrap()
                    return
                result = outcome.capture(function, *args)
                if reply is not None:
                    reply.put(result)
                elif isinstance(result, outcome.Error):
                    log.warning("consumer call failed", topic=self._topic, call=function.__name__,
                                error=str(result.error))
        finally:
            self._in_callback = None

    def _start_in_trio(self, listener: Callable[[], Awaitable[None]]) -> bool:
        """Start the listener as a task of ``fetch``'s nursery (or, inside ``close``, of trio's own)."""
        nursery = self._callbacks
        try:
            if nursery is not None:
                trio.from_thread.run_sync(nursery.start_soon, listener)
            else:  # librdkafka calls back inside close(): the consumer has revoked everything already
                trio.from_thread.run_sync(trio.lowlevel.spawn_system_task, _quietly, listener)
        except trio.RunFinishedError:
            return False
        return True


async def _quietly(listener: Callable[[], Awaitable[None]]) -> None:
    """A system task must not raise; the listener's outcome reaches the poll thread anyway."""
    try:
        await listener()
    except Exception:  # noqa: BLE001 - relayed to the poll thread, which raises it from close()
        pass
