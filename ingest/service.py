"""The ingest process: what it depends on is chosen by ``WEBHOOK_MODE``."""

from __future__ import annotations

import httpx
import trio
import trio_asyncio

from ingest.app import create_app
from shared.broker_probe import broker_check
from shared.http_server import serve_http
from shared.probes import Check
from shared.settings import Settings

REQUIRED = ("webhook_secrets",)


def _api_check(client: httpx.AsyncClient) -> Check:
    async def check() -> None:
        response = await client.get("/healthz")
        response.raise_for_status()

    return check


async def serve_ingest(
    settings: Settings,
    loop: trio_asyncio.TrioEventLoop,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with httpx.AsyncClient(base_url=settings.api_base_url, timeout=settings.api_timeout_seconds) as client:
        if settings.webhook_mode == "kafka":
            checks: dict[str, Check] = {"broker": broker_check(settings.kafka_bootstrap_servers)}
        else:
            checks = {"api": _api_check(client)}
        app = create_app(checks)
        await serve_http(app, settings.bind_host, settings.ingest_port, shutdown,
                         grace_seconds=settings.shutdown_grace_seconds, task_status=task_status)
