"""The workers process: database pools, broker, and the probes server."""

from __future__ import annotations

from functools import partial

import trio
import trio_asyncio

from shared.broker_probe import broker_check
from shared.database import open_database
from shared.http_server import serve_http
from shared.probes import Check, probes_app
from shared.settings import Settings


REQUIRED = ("database_urls",)


async def serve_workers(
    settings: Settings,
    loop: trio_asyncio.TrioEventLoop,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with open_database(loop, settings.database_urls) as database:
        checks: dict[str, Check] = {"broker": broker_check(settings.kafka_bootstrap_servers)}
        checks.update({f"shard{i}": partial(database.ping, i) for i in range(database.shard_count)})
        app = probes_app("workers", checks)
        await serve_http(app, settings.bind_host, settings.workers_port, shutdown,
                         grace_seconds=settings.shutdown_grace_seconds, task_status=task_status)
