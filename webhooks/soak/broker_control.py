"""``webhooks soak --broker-only``: the soak's Kafka traffic with no service of ours, to see whether the
embedded broker slows down by itself as it fills.

In kafka mode a 202 waits for the broker's acknowledgement, so the soak's p99 can only be flat if
the broker's acknowledgements are. This sends the soak's record stream (its rate, ~400-byte
records keyed by 1,000 users, 80 % orders / 20 % disputes, 6 partitions a topic) with ingest's
producer settings, while two consumers per topic — as two workers would, with the workers'
consumer settings — read everything and commit every second. Nothing else runs: no ingest, api,
worker or PostgreSQL. Every 10 s it prints the acknowledgements' p50/p99 and the broker's RSS and
CPU. (tansu's memory store lists every stored batch of a partition on each fetch that finds new
data — ``tansu-storage/src/dynostore.rs`` ``fetch`` — so each fetch costs more as the log grows.)
"""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import dataclass

import psutil
import trio
from confluent_kafka import Consumer, KafkaException, Producer

from shared.kafka_producer import producer_config
from shared.topics import admin_client, create_topics
from webhooks.bench.runner import progress
from webhooks.embedded import open_embedded_broker
from webhooks.soak.meters import broker_process, cpu_seconds
from workers.consumer_client import ConsumerConfig

CONSUMERS_PER_TOPIC = 2
COMMIT_SECONDS = 1.0
RECORD = b"x" * 400
USERS = 1_000
PARTITIONS = 6
WINDOW_SECONDS = 10.0


@dataclass(frozen=True)
class Window:
    seconds: float  # since the start: the end of the window
    records: int  # produced so far
    p50_ms: float
    p99_ms: float
    broker_rss_mb: float
    broker_cpu_percent: float  # of one core, over the window


async def run_broker_only(minutes: float, rate: int) -> int:
    await measure_broker_only(minutes, rate)
    return 0


async def measure_broker_only(minutes: float, rate: int, window_seconds: float = WINDOW_SECONDS) -> list[Window]:
    async with open_embedded_broker() as bootstrap:
        broker = broker_process(bootstrap)
        if broker is None:
            raise RuntimeError(f"no broker process listens on {bootstrap}")
        prefix = f"control{uuid.uuid4().hex[:6]}."
        topics = [prefix + "orders", prefix + "disputes"]
        await trio.to_thread.run_sync(create_topics, admin_client(bootstrap), topics, PARTITIONS)
        progress(f"broker only: {minutes:g} min at {rate}/s, {CONSUMERS_PER_TOPIC} consumers a topic")
        async with trio.open_nursery() as nursery:
            for topic in topics:
                for _ in range(CONSUMERS_PER_TOPIC):
                    nursery.start_soon(_consume, bootstrap, topic)
            windows = await _produce(bootstrap, topics, rate, minutes, broker, window_seconds)
            nursery.cancel_scope.cancel()
    return windows


async def _produce(bootstrap: str, topics: list[str], rate: int, minutes: float, broker: psutil.Process,
                   window_seconds: float) -> list[Window]:
    producer = Producer(producer_config(bootstrap, delivery_timeout_seconds=30.0))
    acks: list[float] = []
    failed: list[str] = []  # deliveries the broker refused or let time out: never counted as acks
    windows: list[Window] = []
    started = window = time.monotonic()
    cpu = cpu_seconds(broker)
    sent = 0
    while (now := time.monotonic()) - started < minutes * 60:
        due = started + sent / rate
        if due > now:
            producer.poll(0)
            await trio.sleep(min(due - now, 0.005))
            continue
        topic = topics[0] if sent % 5 else topics[1]
        producer.produce(topic, RECORD, key=str(sent % USERS).encode(),
                         on_delivery=lambda error, _message, at=now: (
                             failed.append(str(error)) if error is not None else acks.append(time.monotonic() - at)))
        sent += 1
        producer.poll(0)
        if now - window >= window_seconds and len(acks) >= 2:
            cpu_now = cpu_seconds(broker)
            windows.append(Window(now - started, sent, statistics.median(acks) * 1000,
                                  statistics.quantiles(acks, n=100, method="inclusive")[98] * 1000,
                                  broker.memory_info().rss / 2**20, 100 * (cpu_now - cpu) / (now - window)))
            progress(_line(windows[-1]))
            acks.clear()
            window, cpu = now, cpu_now
    if await trio.to_thread.run_sync(producer.flush, 10.0):
        raise RuntimeError("the broker did not acknowledge every record within 10 s of the last")
    if failed:
        raise RuntimeError(f"{len(failed)} records were not delivered (first: {failed[0]}): the timings would lie")
    return windows


def _line(w: Window) -> str:
    return (f"broker only {w.seconds:4.0f} s  records {w.records:,}  acks p50 {w.p50_ms:.1f} ms  p99 {w.p99_ms:.1f} ms"
            f"  broker RSS {w.broker_rss_mb:.0f} MB  CPU {w.broker_cpu_percent:.0f} %")


async def _consume(bootstrap: str, topic: str) -> None:
    consumer = Consumer({**ConsumerConfig(bootstrap, session_timeout_seconds=2.0).librdkafka(group=topic)})
    consumer.subscribe([topic])
    committed = time.monotonic()
    try:
        while True:
            await trio.to_thread.run_sync(consumer.consume, 500, 0.1, abandon_on_cancel=False)
            if time.monotonic() - committed >= COMMIT_SECONDS:
                await trio.to_thread.run_sync(_commit, consumer)
                committed = time.monotonic()
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(consumer.close)


def _commit(consumer: Consumer) -> None:
    try:
        consumer.commit(asynchronous=True)
    except KafkaException:
        pass  # nothing consumed yet: nothing to commit
