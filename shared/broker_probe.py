"""Readiness of the Kafka broker and of our producer, as seen from a trio process."""

from __future__ import annotations

import trio

from shared.errors import BrokerUnavailable
from shared.kafka_producer import KafkaProducer
from shared.probes import Check
from shared.topics import admin_client, ping_broker


def broker_check(bootstrap_servers: str) -> Check:
    """A readiness check: the broker answers a metadata request (admin calls are blocking C: on a thread)."""
    admin = admin_client(bootstrap_servers)

    async def check() -> None:
        await trio.to_thread.run_sync(ping_broker, admin, abandon_on_cancel=True)

    return check


def producer_check(producer: KafkaProducer) -> Check:
    """A readiness check: the producer is not being replaced after a fatal error (the body says why)."""

    async def check() -> None:
        problem = producer.statistics().problem
        if problem is not None:
            raise BrokerUnavailable(problem)

    return check
