from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio_asyncio
from confluent_kafka import Consumer, TopicPartition

from ingest.service import serve_ingest
from shared.settings import Settings
from shared.topics import ALL_TOPICS, admin_client, create_topics


@pytest.fixture
async def kafka_ingest(settings: Settings) -> AsyncIterator[str]:
    """Ingest in kafka mode, in-process on a free port, with this test's topics."""
    admin = admin_client(settings.kafka_bootstrap_servers)
    await trio.to_thread.run_sync(create_topics, admin, [settings.topic(t) for t in ALL_TOPICS],
                                  settings.topic_partitions)
    shutdown = trio.Event()
    async with trio_asyncio.open_loop() as loop, trio.open_nursery() as nursery:
        urls = await nursery.start(serve_ingest, settings.replace(ingest_port=0, webhook_mode="kafka"), loop, shutdown)
        yield urls[0]
        shutdown.set()


def _consumer(bootstrap: str) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": "tests-reader", "enable.auto.commit": False})


def record_count(bootstrap: str, topic: str, partitions: int) -> int:
    """Records on a topic, from its watermarks (exact: ingest answers only after the broker's ack)."""
    consumer = _consumer(bootstrap)
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions))
    finally:
        consumer.close()


def read_records(bootstrap: str, topic: str, partitions: int, count: int, timeout: float = 20.0) -> list:
    """The first ``count`` records of ``topic`` (all partitions), without joining a group."""
    consumer = _consumer(bootstrap)
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records = []
    try:
        for _ in range(int(timeout / 0.2)):
            for message in consumer.consume(count - len(records), 0.2):
                if message.error() is None:
                    records.append(message)
            if len(records) >= count:
                return records
        raise AssertionError(f"only {len(records)} of {count} records on {topic}")
    finally:
        consumer.close()
