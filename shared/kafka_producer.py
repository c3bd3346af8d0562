"""An idempotent confluent-kafka producer driven from the trio thread, replaced when it dies.

``produce()`` hands the record to librdkafka (non-blocking) and waits for its
delivery report; a poll task on the trio thread serves the callbacks, sleeping 1 ms
between polls while records are in flight and ``IDLE_POLL_SECONDS`` otherwise (error
and statistics events must not pile up). A record not acknowledged by all in-sync
replicas within ``delivery_timeout`` is a ``BrokerUnavailable``: the caller answers
503, never hangs.

A producer that cannot deliver again by itself is replaced by a fresh one
(``shared.producer_health`` decides when; ``kafka_producer_recreations_total`` counts it):

- a fatal librdkafka error — confluent-kafka raises it from ``poll()`` as a
  ``KafkaException`` whose error is ``fatal()`` (it does not reach ``error_cb``; we
  check there too), and ``produce()`` then raises ``_FATAL``;
- a fenced idempotent producer — ``PRODUCER_FENCED`` / ``INVALID_PRODUCER_EPOCH`` in a
  delivery report. librdkafka reports it as *not* fatal and bumps its epoch again, which
  the broker fences again, for ever: after a broker stall, tansu does exactly this.

The waiters of the dead producer's records are answered at once with a failure (503,
never a false 202: only an acknowledged delivery report resolves a record as sent);
the dead producer is purged and closed on a worker thread (``close()`` flushes without
a deadline), its callbacks inert from then on. ``statistics().problem`` names the reason
for ``/readyz`` until the new producer delivers a record or gets its producer id.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import trio
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import Counter, Histogram

from shared.errors import BrokerUnavailable
from shared.logs import get_logger
from shared.producer_health import Delivered, Event, Fatal, Health, IdAssigned, Phase, Recreated

log = get_logger(__name__)
DELIVERY_SECONDS = Histogram("kafka_delivery_seconds", "From produce() to the broker's acknowledgement", ["topic"],
                             buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
RECREATIONS = Counter("kafka_producer_recreations_total", "Producers replaced after a fatal error", ["error"])
POLL_INTERVAL_SECONDS = 0.001
IDLE_POLL_SECONDS = 0.5
STATISTICS_INTERVAL_MS = 1000  # how soon a recreated producer is seen to have its producer id
FLUSH_DEADLINE_SECONDS = 5.0
CLOSE_DEADLINE_SECONDS = 5.0
# A producer that sees these never delivers again, though librdkafka does not call them fatal.
DEAD_PRODUCER_CODES = frozenset({KafkaError._FATAL, KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                 KafkaError.INVALID_PRODUCER_EPOCH})

ProducerFactory = Callable[[dict[str, Any]], Producer]  # confluent's Producer, or a test's fake


def is_fatal(error: KafkaError) -> bool:
    """Whether this error means the producer must be replaced."""
    return error.fatal() or error.code() in DEAD_PRODUCER_CODES


def kafka_error(exc: KafkaException) -> KafkaError | None:
    return exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None


def producer_config(bootstrap_servers: str, delivery_timeout_seconds: float) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "message.timeout.ms": int(delivery_timeout_seconds * 1000),
        "socket.connection.setup.timeout.ms": 2000,
        "statistics.interval.ms": STATISTICS_INTERVAL_MS,
    }


@dataclass(frozen=True)
class ProducerStatistics:
    phase: str
    problem: str | None  # why the producer is not trusted, for /readyz; None when healthy
    recreations: int
    in_flight: int


@dataclass(eq=False)
class _Delivery:
    done: trio.Event = field(default_factory=trio.Event)
    error: str | None = None
    offset: int | None = None

    def settle(self, error: str | None, offset: int | None = None) -> None:
        if not self.done.is_set():  # the first outcome stands
            self.error, self.offset = error, offset
            self.done.set()


@dataclass(eq=False)
class _Generation:
    """One confluent producer and the deliveries awaited from it; once retired its callbacks do nothing
    (they may then run on the worker thread that closes it)."""

    client: Producer = field(init=False)
    pending: set[_Delivery] = field(default_factory=set)
    retired: bool = False

    def fail_pending(self, reason: str) -> None:
        for delivery in self.pending:
            delivery.settle(reason)
        self.pending.clear()

    def retire(self, reason: str) -> None:
        self.retired = True
        self.fail_pending(reason)


class KafkaProducer:
    def __init__(self, bootstrap_servers: str, *, delivery_timeout_seconds: float = 5.0,
                 factory: ProducerFactory = Producer) -> None:
        self._config = producer_config(bootstrap_servers, delivery_timeout_seconds)
        self._factory = factory
        self._health = Health()
        self._fatal_error = ""  # the error name that made the current producer fatal: the metric's label
        self._current = self._new_generation()
        self._wakeup = trio.Event()
        self._delivery_seconds: dict[str, Histogram] = {}  # labels() once per topic, not per record

    def statistics(self) -> ProducerStatistics:
        return ProducerStatistics(self._health.phase.value, self._health.problem(), self._health.recreations,
                                  len(self._current.pending))

    async def produce(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> int:
        """Produce one record and wait until the broker acknowledged it; returns its offset."""
        if self._health.phase is Phase.PENDING:
            raise BrokerUnavailable(f"cannot enqueue the record: {self._health.problem()}")
        generation, delivery = self._current, _Delivery()
        try:
            # librdkafka only reads the list, and (str, bytes) pairs are among those it takes
            generation.client.produce(topic, value, key,
                                      headers=cast("list[tuple[str, str | bytes | None]]", headers),
                                      on_delivery=partial(self._on_delivery, generation, delivery))
        except BufferError as exc:
            raise BrokerUnavailable(f"cannot enqueue the record: {exc}") from exc
        except KafkaException as exc:
            self._check_fatal(generation, kafka_error(exc))
            raise BrokerUnavailable(f"cannot enqueue the record: {exc}") from exc
        generation.pending.add(delivery)
        self._wakeup.set()
        started = trio.current_time()
        await delivery.done.wait()
        self._delivery_histogram(topic if delivery.error is None else "failed").observe(trio.current_time() - started)
        if delivery.error is not None:
            raise BrokerUnavailable(f"broker did not acknowledge the record: {delivery.error}")
        return delivery.offset  # type: ignore[return-value]  # settled with no error, so with the message's offset

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve callbacks and replace a dead producer until cancelled; then flush what is in flight (bounded)."""
        async with trio.open_nursery() as disposals:
            task_status.started()
            try:
                while True:
                    self._poll()
                    if self._health.due(trio.current_time()):
                        disposals.start_soon(self._dispose, self._recreate())
                    else:
                        await self._rest()
            finally:
                await self._close()

    # --- the poll task's steps --------------------------------------------------------------

    def _poll(self) -> None:
        generation = self._current
        try:
            generation.client.poll(0)
        except KafkaException as exc:  # how confluent-kafka surfaces a fatal error
            error = kafka_error(exc)
            if error is None or not error.fatal():
                raise
            self._check_fatal(generation, error)

    async def _rest(self) -> None:
        if self._current.pending:
            await trio.sleep(POLL_INTERVAL_SECONDS)
            return
        now = trio.current_time()
        wake_at = self._health.not_before if self._health.phase is Phase.PENDING else now + IDLE_POLL_SECONDS
        with trio.move_on_at(wake_at):
            await self._wakeup.wait()
        self._wakeup = trio.Event()

    def _recreate(self) -> _Generation:
        """Swap in a fresh producer; returns the dead one, its waiters answered."""
        dead, reason = self._current, self._health.problem() or "producer replaced"
        dead.retire(reason)
        self._current = self._new_generation()
        self._step(Recreated())
        RECREATIONS.labels(self._fatal_error).inc()
        log.warning("kafka producer recreated after a fatal error", error=self._health.reason,
                    recreations=self._health.recreations)
        return dead

    async def _dispose(self, dead: _Generation) -> None:
        try:
            dead.client.purge(in_queue=True, in_flight=True)  # their reports arrive on the closing thread, ignored
        except (KafkaException, RuntimeError) as exc:
            log.warning("cannot purge the replaced kafka producer", error=repr(exc))
        await trio.to_thread.run_sync(dead.client.close, abandon_on_cancel=True)

    async def _close(self) -> None:
        """Deliver what is queued (on this thread: callbacks touch trio objects) within a deadline, then close."""
        generation = self._current
        with trio.CancelScope(shield=True, deadline=trio.current_time() + FLUSH_DEADLINE_SECONDS):
            while len(generation.client) and self._health.phase is not Phase.PENDING:  # a dead one delivers nothing
                self._poll()
                await trio.sleep(POLL_INTERVAL_SECONDS)
        if len(generation.client):
            log.warning("records not delivered at shutdown", count=len(generation.client))
        generation.retire("the producer is shutting down")
        with trio.CancelScope(shield=True, deadline=trio.current_time() + CLOSE_DEADLINE_SECONDS):
            await self._dispose(generation)

    # --- librdkafka's callbacks (on the trio thread while the generation is current) ----------

    def _new_generation(self) -> _Generation:
        generation = _Generation()
        generation.client = self._factory({**self._config, "error_cb": partial(self._on_error, generation),
                                           "stats_cb": partial(self._on_statistics, generation)})
        return generation

    def _on_delivery(self, generation: _Generation, delivery: _Delivery, error: KafkaError | None,
                     message: Message) -> None:
        if generation.retired:
            return  # its waiter was answered when the producer was replaced
        generation.pending.discard(delivery)
        if error is None:
            delivery.settle(None, message.offset())
            self._step(Delivered())
            return
        delivery.settle(error.str())
        self._check_fatal(generation, error)

    def _on_error(self, generation: _Generation, error: KafkaError) -> None:
        if generation.retired:
            return
        if error.fatal():
            self._check_fatal(generation, error)
        elif error.code() == KafkaError._TRANSPORT:  # each failed (re)connect: librdkafka's own log has it too
            log.debug("kafka producer error", error=error.str(), code=error.name())
        else:
            log.warning("kafka producer error", error=error.str(), code=error.name())

    def _on_statistics(self, generation: _Generation, statistics: str) -> None:
        if generation.retired or self._health.phase is not Phase.RECOVERING:
            return
        eos = json.loads(statistics).get("eos") or {}
        if eos.get("idemp_state") == "Assigned" and eos.get("producer_id", -1) >= 0:
            self._step(IdAssigned())
            log.info("recreated kafka producer confirmed by the broker", producer_id=eos["producer_id"])

    def _check_fatal(self, generation: _Generation, error: KafkaError | None) -> None:
        if error is None or generation.retired or not is_fatal(error):
            return
        if self._health.phase is not Phase.PENDING:
            self._fatal_error = error.name()
            log.error("kafka producer cannot deliver again; replacing it", error=error.str(), code=error.name(),
                      fatal=error.fatal())
        self._step(Fatal(f"{error.name()}: {error.str()}"))
        generation.fail_pending(f"{self._health.problem()}")  # now, not after the replacement's backoff
        self._wakeup.set()

    def _step(self, event: Event) -> None:
        self._health = self._health.step(event, trio.current_time())

    def _delivery_histogram(self, label: str) -> Histogram:
        histogram = self._delivery_seconds.get(label)
        if histogram is None:
            histogram = self._delivery_seconds[label] = DELIVERY_SECONDS.labels(label)
        return histogram
