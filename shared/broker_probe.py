"""Readiness of the Kafka broker as seen from a trio process (admin calls are blocking C)."""

from __future__ import annotations

import trio

from shared.probes import Check
from shared.topics import admin_client, ping_broker


def broker_check(bootstrap_servers: str) -> Check:
    """A readiness check: the broker answers a metadata request."""
    admin = admin_client(bootstrap_servers)

    async def check() -> None:
        await trio.to_thread.run_sync(ping_broker, admin, abandon_on_cancel=True)

    return check
