"""``webhooks dlq list|replay``: reading dead letters, and sending them back to their topic.

Replay reads the DLQ from the beginning (no consumer group), optionally only one
reason, and produces each record to its original topic with its original key, value
and headers plus ``replay.*`` provenance. Replaying twice is harmless: the workers
treat an event they already applied as a duplicate. Every record's delivery report is
awaited: a letter the broker refused or did not acknowledge is named with its error,
and the replay fails (``webhooks dlq replay`` exits 1) after sending all the others.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from shared.errors import BrokerUnavailable
from shared.settings import Settings
from shared.topics import DISPUTES, DLQ_SUFFIX, ORDERS, admin_client, describe_topics

REPLAY_TIMEOUT_SECONDS = 30.0
STALL_SECONDS = 5.0  # reading a DLQ partition that stops short of its end fails after this


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
                         "enable.auto.commit": False, "enable.partition.eof": True})
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
    """The partition's records up to its end as the fetch reports it (partition EOF). The watermark
    only says whether there is anything: tansu's ListOffsets under-reports it (the last batch's base
    offset + 1), so reading up to it missed the rest of a batch."""
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    if high <= low:
        return
    consumer.assign([TopicPartition(topic, partition, low)])
    offset, deadline = low, time.monotonic() + STALL_SECONDS
    while True:
        messages = consumer.consume(500, 0.2)
        if messages:
            deadline = time.monotonic() + STALL_SECONDS
        elif time.monotonic() > deadline:
            raise BrokerUnavailable(f"{topic}[{partition}]: no records from offset {offset} "
                                    f"within {STALL_SECONDS:.0f} s")
        for message in messages:
            error = message.error()
            if error is None:
                offset = message.offset() + 1
                yield Letter(topic, partition, message.offset(), message.key(), message.value(),
                             list(message.headers() or []))
            elif error.code() == KafkaError._PARTITION_EOF:
                return


class ReplayIncomplete(BrokerUnavailable):
    """Some dead letters were not replayed; the message names each one and why (``webhooks dlq replay`` exits 1)."""

    def __init__(self, replayed: int, failures: list[ReplayFailure]) -> None:
        lines = [f"replayed {replayed} of {replayed + len(failures)} dead letters; {len(failures)} failed:",
                 *(f"  {failure}" for failure in failures)]
        super().__init__("\n".join(lines))
        self.replayed, self.failures = replayed, failures


@dataclass(frozen=True)
class ReplayFailure:
    letter: Letter
    error: str

    def __str__(self) -> str:
        letter, target = self.letter, self.letter.header("dlq.original.topic") or "(no dlq.original.topic header)"
        return f"{letter.dlq_topic}[{letter.partition}]@{letter.offset} -> {target}: {self.error}"


def replay(settings: Settings, letters: list[Letter]) -> int:
    """Produce each letter to its original topic and wait for every delivery report.

    Returns how many were replayed; raises ``ReplayIncomplete`` naming each letter the
    broker did not acknowledge (the others were replayed all the same).
    """
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, "enable.idempotence": True,
                         "message.timeout.ms": int(REPLAY_TIMEOUT_SECONDS * 1000)})
    now = dt.datetime.now(dt.UTC).isoformat()
    outcomes: dict[int, str | None] = {}  # letter index -> None once acknowledged, else why not
    for index, letter in enumerate(letters):
        _produce(producer, letter, now, partial(outcomes.__setitem__, index))
    producer.flush(REPLAY_TIMEOUT_SECONDS + 5)  # every record has its report by then (message.timeout.ms)
    failures = [ReplayFailure(letter, error) for index, letter in enumerate(letters)
                if (error := outcomes.get(index, "no delivery report")) is not None]
    if failures:
        raise ReplayIncomplete(len(letters) - len(failures), failures)
    return len(letters)


def _produce(producer: Producer, letter: Letter, now: str, report: Callable[[str | None], None]) -> None:
    """Hand one letter to the producer; ``report`` gets None once acknowledged, else the error."""
    original = [(k, v) for k, v in letter.headers if not k.startswith(("dlq.", "replay."))]
    provenance = [("replay.from", f"{letter.dlq_topic}/{letter.partition}/{letter.offset}".encode()),
                  ("replay.reason", letter.header("dlq.reason").encode()), ("replay.at", now.encode())]

    def delivered(error: KafkaError | None, _message: object) -> None:
        report(None if error is None else error.str())

    while True:
        try:
            producer.produce(letter.header("dlq.original.topic"), letter.value, letter.key,
                             headers=original + provenance, on_delivery=delivered)
        except BufferError:  # the local queue is full: serve reports, then try again
            producer.poll(0.5)
            continue
        except KafkaException as exc:
            report(f"refused: {exc.args[0].str() if isinstance(exc.args[0], KafkaError) else exc}")
        producer.poll(0)
        return


def describe(letter: Letter) -> str:
    return (f"{letter.dlq_topic}[{letter.partition}]@{letter.offset} reason={letter.header('dlq.reason')} "
            f"from={letter.header('dlq.original.topic')}[{letter.header('dlq.original.partition')}]"
            f"@{letter.header('dlq.original.offset')} key={(letter.key or b'').decode(errors='replace')} "
            f"at={letter.header('dlq.failed_at')} error={letter.header('dlq.error')!r}")
