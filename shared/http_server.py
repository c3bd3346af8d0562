"""Serving an ASGI app on hypercorn's trio worker, with the process's shutdown event."""

from __future__ import annotations

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import Framework


def hypercorn_config(host: str, port: int, *, grace_seconds: float) -> Config:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.graceful_timeout = grace_seconds
    config.accesslog = None  # requests are counted in /metrics, not logged one line each
    config.errorlog = None
    config.keep_alive_timeout = 75  # above common load-balancer idle timeouts
    return config


async def serve_http(
    app: Framework,
    host: str,
    port: int,
    shutdown: trio.Event,
    *,
    grace_seconds: float,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``shutdown`` is set; ``task_status.started`` receives the bound URLs."""
    config = hypercorn_config(host, port, grace_seconds=grace_seconds)
    await serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)
