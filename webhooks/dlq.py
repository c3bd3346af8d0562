"""``webhooks dlq list|replay``: reading dead letters, and sending them back to their topic.

Replay reads the DLQ from the beginning (no consumer group), optionally only one
reason, and produces each record to its original topic with its original key, value
and headers plus ``replay.*`` provenance. Replaying twice is harmless: the workers
treat an event they already applied as a duplicate.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, Producer, TopicPartition

from shared.errors import BrokerUnavailable
from shared.settings import Settings
from shared.topics import DISPUTES, DLQ_SUFFIX, ORDERS, admin_client, describe_topics


@dataclass(frozen=True)
class Letter:
    dlq_topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    def header(self, name: str) -> str:
        return next((value.decode(errors="replace") for key, value in self.headers if key == name), "")


def read_letters(settings: Settings, reason: str | None = None, limit: int | None = None) -> Iterator[Letter]:
    """Every dead letter of both DLQ topics, oldest first per partition."""
    admin = admin_client(settings.kafka_bootstrap_servers)
    names = [settings.topic(t) + DLQ_SUFFIX for t in (ORDERS, DISPUTES)]
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "webhooks-dlq-reader",
                         "enable.auto.commit": False})
    count = 0
    try:
        for state in describe_topics(admin, names):
            for partition in range(state.partitions):
                for letter in _partition_letters(consumer, state.name, partition):
                    if reason is None or letter.header("dlq.reason") == reason:
                        yield letter
                        count += 1
                        if limit is not None and count >= limit:
                            return
    finally:
        consumer.close()


def _partition_letters(consumer: Consumer, topic: str, partition: int) -> Iterator[Letter]:
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    if high <= low:
        return
    consumer.assign([TopicPartition(topic, partition, low)])
    offset = low
    while offset < high:
        messages = consumer.consume(500, 5.0)
        if not messages:
            raise BrokerUnavailable(f"{topic}[{partition}]: no records from offset {offset} within 5 s")
        for message in messages:
            if message.error() is None:
                offset = message.offset() + 1
                yield Letter(topic, partition, message.offset(), message.key(), message.value(),
                             list(message.headers() or []))


def replay(settings: Settings, letters: list[Letter]) -> int:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, "enable.idempotence": True})
    now = dt.datetime.now(dt.UTC).isoformat()
    for letter in letters:
        original = [(k, v) for k, v in letter.headers if not k.startswith(("dlq.", "replay."))]
        provenance = [("replay.from", f"{letter.dlq_topic}/{letter.partition}/{letter.offset}".encode()),
                      ("replay.reason", letter.header("dlq.reason").encode()), ("replay.at", now.encode())]
        producer.produce(letter.header("dlq.original.topic"), letter.value, letter.key, headers=original + provenance)
        producer.poll(0)
    if producer.flush(30):
        raise BrokerUnavailable("some replayed records were not acknowledged within 30 s")
    return len(letters)


def describe(letter: Letter) -> str:
    return (f"{letter.dlq_topic}[{letter.partition}]@{letter.offset} reason={letter.header('dlq.reason')} "
            f"from={letter.header('dlq.original.topic')}[{letter.header('dlq.original.partition')}]"
            f"@{letter.header('dlq.original.offset')} key={(letter.key or b'').decode(errors='replace')} "
            f"at={letter.header('dlq.failed_at')} error={letter.header('dlq.error')!r}")
