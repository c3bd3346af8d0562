"""The naive consumer the workers are measured against: one message, one transaction, one commit.

``python -m webhooks.bench.naive_consumer TOPIC`` with DATABASE_URLS and
KAFKA_BOOTSTRAP_SERVERS set. It uses the same rules and repository as the workers,
so the difference is only the shape: no batching, no actors, a synchronous commit
per message.
"""

from __future__ import annotations

import os
import sys
from functools import partial

import trio
from confluent_kafka import Consumer

from shared.asyncio_loop import open_asyncio_loop
from shared.database import open_database
from shared.messages import OrderWebhook
from shared.repository import apply_batch
from shared.settings import Settings
from shared.shard_routing import home_shard
from workers.partition_actor import decode_update


async def main(topic: str) -> None:
    settings = Settings.from_environ(os.environ)
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": topic + ".naive",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", "session.timeout.ms": 2000,
                         "heartbeat.interval.ms": 500})
    consumer.subscribe([topic])
    async with open_asyncio_loop() as loop, open_database(loop, settings.database_urls) as database:
        while True:
            message = await trio.to_thread.run_sync(consumer.poll, 0.2)
            if message is None or message.error() is not None:
                continue
            update = decode_update(message.value(), OrderWebhook)
            await database.run(home_shard(database, update), apply_batch, [update])
            await trio.to_thread.run_sync(partial(consumer.commit, message=message, asynchronous=False))


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
