"""The api process: per-shard pools and writer actors, and the HTTP server."""

from __future__ import annotations

import datetime as dt
from functools import partial

import asyncpg
import trio
import trio_asyncio

from api.app import create_app
from api.grpc_server import serve_grpc
from api.shard_writer import ShardWriter
from api.updates import UpdateApplier
from shared.database import Database, open_database
from shared.http_server import serve_http
from shared.logs import get_logger
from shared.migrations import ensure_partitions
from shared.settings import Settings

REQUIRED = ("database_urls", "internal_token", "api_tokens")
# A batch waits this share of API_TIMEOUT (ingest's per-call timeout, configured alike on both)
# for one shard, so a hung shard's updates get 503 while the call can still answer the others.
SHARD_DEADLINE_SHARE = 0.75
log = get_logger(__name__)


async def _partitions_ahead(pool: asyncpg.Pool) -> list[str]:
    async with pool.acquire() as conn:
        return await ensure_partitions(conn, dt.datetime.now(dt.UTC).date())


async def create_partitions(database: Database) -> None:
    """Monthly dispute_events partitions ahead, on every reachable shard (best effort at start)."""
    for shard in range(database.shard_count):
        try:
            with trio.fail_after(10):
                await database.run(shard, _partitions_ahead)
        except Exception as exc:  # noqa: BLE001 - a shard down at start is reported by /readyz
            log.warning("could not create partitions", shard=shard, error=repr(exc))


async def serve_api(
    settings: Settings,
    loop: trio_asyncio.TrioEventLoop,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """HTTP always; gRPC too in grpc mode. The writers outlive both servers' draining."""
    async with open_database(loop, settings.database_urls) as database, trio.open_nursery() as actors:
        await create_partitions(database)
        writers = None
        if settings.api_writer == "batch":
            writers = [ShardWriter(database, shard, max_batch=settings.api_writer_max_batch)
                       for shard in range(database.shard_count)]
            for writer in writers:
                await actors.start(writer.run)
        applier = UpdateApplier(database, writers,
                                shard_deadline_seconds=SHARD_DEADLINE_SHARE * settings.api_timeout_seconds)
        async with trio.open_nursery() as servers:
            if settings.webhook_mode == "grpc":
                port = await servers.start(serve_grpc, settings, loop, applier, shutdown)
                log.info("grpc listening", port=port)
            app = create_app(settings, database, applier)
            urls = await servers.start(partial(serve_http, grace_seconds=settings.shutdown_grace_seconds),
                                       app, settings.bind_host, settings.api_port, shutdown)
            task_status.started(urls)
        actors.cancel_scope.cancel()
