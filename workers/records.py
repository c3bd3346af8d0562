"""Kafka records as plain values, and the dead-letter record built from one (no I/O)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import cast

from confluent_kafka import Message

from shared.topics import DLQ_SUFFIX

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    @classmethod
    def from_message(cls, message: Message) -> Record:
        # A fetched record (one without an error) has a topic, a partition and an offset, and
        # a consumer's headers are a list of pairs (a dict only on the producing side).
        return cls(cast(str, message.topic()), cast(int, message.partition()), cast(int, message.offset()),
                   message.key(), message.value(), list(cast(Headers, message.headers() or [])))


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers


def dead_letter(record: Record, reason: str, error: str, attempts: int, failed_at: dt.datetime) -> DeadLetter:
    """The original key, value and headers, plus why and where it failed."""
    provenance = [
        ("dlq.reason", reason), ("dlq.error", error[:1000]), ("dlq.original.topic", record.topic),
        ("dlq.original.partition", str(record.partition)), ("dlq.original.offset", str(record.offset)),
        ("dlq.failed_at", failed_at.isoformat()), ("dlq.attempts", str(attempts)),
    ]
    kept = [(name, value) for name, value in record.headers if not name.startswith("dlq.")]
    return DeadLetter(record.topic + DLQ_SUFFIX, record.key, record.value,
                      kept + [(name, value.encode()) for name, value in provenance])
