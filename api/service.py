"""The api process: database pools per shard and the HTTP server."""

from __future__ import annotations

import trio
import trio_asyncio

from api.app import create_app
from shared.database import open_database
from shared.http_server import serve_http
from shared.settings import Settings

REQUIRED = ("database_urls",)


async def serve_api(
    settings: Settings,
    loop: trio_asyncio.TrioEventLoop,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with open_database(loop, settings.database_urls) as database:
        app = create_app(settings, database)
        await serve_http(app, settings.bind_host, settings.api_port, shutdown,
                         grace_seconds=settings.shutdown_grace_seconds, task_status=task_status)
