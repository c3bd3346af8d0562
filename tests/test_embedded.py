"""The embedded fixtures really talk to PostgreSQL and to the broker: a round trip each."""

import trio
import trio_asyncio
from confluent_kafka import Consumer, Producer

from shared.database import open_database
from shared.topics import admin_client, create_topics, describe_topics
from tests.conftest import Deps


async def _round_trip(pool) -> list[str]:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("CREATE TABLE probe (id int PRIMARY KEY, note text)")
        await conn.executemany("INSERT INTO probe VALUES ($1, $2)", [(1, "one"), (2, "two")])
        return [row["note"] for row in await conn.fetch("SELECT note FROM probe ORDER BY id")]


async def test_postgres_round_trip_through_the_trio_bridge(empty_database_url: str) -> None:
    with trio.fail_after(30):
        async with trio_asyncio.open_loop() as loop, open_database(loop, [empty_database_url]) as database:
            assert await database.run(0, _round_trip) == ["one", "two"]
            await database.ping(0)


def test_broker_round_trip(deps: Deps) -> None:
    topic = "embedded.round-trip"
    admin = admin_client(deps.kafka_bootstrap_servers)
    create_topics(admin, [topic], partitions=2)
    assert [state.partitions for state in describe_topics(admin, [topic])] == [2]

    producer = Producer({"bootstrap.servers": deps.kafka_bootstrap_servers, "enable.idempotence": True})
    producer.produce(topic, key=b"user-1", value=b"hello", headers=[("event_type", b"probe")])
    assert producer.flush(10) == 0

    consumer = Consumer({
        "bootstrap.servers": deps.kafka_bootstrap_servers, "group.id": "round-trip",
        "auto.offset.reset": "earliest", "session.timeout.ms": 2000, "heartbeat.interval.ms": 500,
    })
    consumer.subscribe([topic])
    try:
        message = None
        for _ in range(60):  # bounded: at most 60 × 0.5 s
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.error() is None
        assert (message.key(), message.value(), message.headers()) == (b"user-1", b"hello", [("event_type", b"probe")])
    finally:
        consumer.close()
