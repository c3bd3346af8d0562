"""An idempotent confluent-kafka producer driven from the trio thread.

``produce()`` hands the record to librdkafka (non-blocking) and waits for its
delivery report; a poll task on the trio thread serves the delivery callbacks,
sleeping 1 ms between polls while records are in flight and not at all when idle.
A record not acknowledged by all in-sync replicas within ``delivery_timeout`` is a
``BrokerUnavailable``: the caller answers 503, never hangs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio
from prometheus_client import Histogram
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from shared.errors import BrokerUnavailable
from shared.logs import get_logger

log = get_logger(__name__)
DELIVERY_SECONDS = Histogram("kafka_delivery_seconds", "From produce() to the broker's acknowledgement", ["topic"],
                             buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
POLL_INTERVAL_SECONDS = 0.001
FLUSH_DEADLINE_SECONDS = 5.0


@dataclass
class _Delivery:
    done: trio.Event = field(default_factory=trio.Event)
    error: KafkaError | None = None
    offset: int | None = None

    def callback(self, error: KafkaError | None, message: Message) -> None:
        self.error, self.offset = error, (message.offset() if error is None else None)
        self.done.set()


def producer_config(bootstrap_servers: str, delivery_timeout_seconds: float) -> dict[str, object]:
    return {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "message.timeout.ms": int(delivery_timeout_seconds * 1000),
        "socket.connection.setup.timeout.ms": 2000,
    }


class KafkaProducer:
    def __init__(self, bootstrap_servers: str, *, delivery_timeout_seconds: float = 5.0) -> None:
        self._producer = Producer(producer_config(bootstrap_servers, delivery_timeout_seconds))
        self._in_flight = 0
        self._wakeup = trio.Event()
        self._delivery_seconds: dict[str, Histogram] = {}  # labels() once per topic, not per record

    async def produce(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> int:
        """Produce one record and wait until the broker acknowledged it; returns its offset."""
        delivery = _Delivery()
        try:
            self._producer.produce(topic, value, key, headers=headers, on_delivery=self._counted(delivery))
        except (BufferError, KafkaException) as exc:
            raise BrokerUnavailable(f"cannot enqueue the record: {exc}") from exc
        self._in_flight += 1
        self._wakeup.set()
        started = trio.current_time()
        await delivery.done.wait()
        self._delivery_histogram(topic if delivery.error is None else "failed").observe(trio.current_time() - started)
        if delivery.error is not None:
            raise BrokerUnavailable(f"broker did not acknowledge the record: {delivery.error.str()}")
        return delivery.offset  # type: ignore[return-value]

    def _delivery_histogram(self, label: str) -> Histogram:
        histogram = self._delivery_seconds.get(label)
        if histogram is None:
            histogram = self._delivery_seconds[label] = DELIVERY_SECONDS.labels(label)
        return histogram

    def _counted(self, delivery: _Delivery):  # noqa: ANN202 - librdkafka's callback signature
        def callback(error: KafkaError | None, message: Message) -> None:
            self._in_flight -= 1
            delivery.callback(error, message)

        return callback

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve delivery callbacks until cancelled; then flush what is in flight (bounded)."""
        task_status.started()
        try:
            while True:
                self._producer.poll(0)
                if self._in_flight:
                    await trio.sleep(POLL_INTERVAL_SECONDS)
                else:
                    await self._wakeup.wait()
                    self._wakeup = trio.Event()
        finally:
            await self._flush()

    async def _flush(self) -> None:
        """Deliver what is queued, on this thread (callbacks touch trio objects), within a deadline."""
        with trio.CancelScope(shield=True, deadline=trio.current_time() + FLUSH_DEADLINE_SECONDS):
            while len(self._producer):
                self._producer.poll(0)
                await trio.sleep(POLL_INTERVAL_SECONDS)
        if len(self._producer):
            log.warning("records not delivered at shutdown", count=len(self._producer))
            self._producer.purge()
            self._producer.poll(0)  # their callbacks report the failure to any waiter
        self._producer.close()  # nothing queued: returns at once, and librdkafka's threads end
