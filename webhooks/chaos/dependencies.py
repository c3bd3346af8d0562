"""The embedded PostgreSQL and broker every chaos run shares, and the faults that hit them.

One server of each for the whole ``webhooks chaos`` run (starting them is the slow part);
every scenario gets fresh shard databases cloned from a migrated template and its own topic
prefix. The database outage stops PostgreSQL (fast shutdown) and starts it again on the same
port and data directory, so every DSN stays valid; the broker is memory-only, so its outage
is a SIGSTOP and a SIGCONT, never a restart.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import trio
import trio_asyncio

from shared.asyncio_loop import open_asyncio_loop
from shared.migrations import migrate_dsn
from shared.sharding import shard_for
from webhooks.chaos.plan import AMOUNT, CURRENCY, Chain
from webhooks.child_process import ChildProcess, open_child
from webhooks.embedded import PgCluster, accepting, broker_argv, dsn, free_port, open_pg_cluster, run_postgres

TEMPLATE = "chaos_template"
SHARDS = 2


class PostgresServer:
    """The embedded server, stoppable and startable again by the db-outage fault."""

    def __init__(self, cluster: PgCluster, port: int, nursery: trio.Nursery) -> None:
        self.cluster, self.port, self._nursery = cluster, port, nursery
        self._scope: trio.CancelScope | None = None
        self._stopped = trio.Event()

    async def start(self) -> None:
        await self._nursery.start(self._serve)

    async def stop(self) -> None:
        assert self._scope is not None, "not running"
        self._scope.cancel()
        await self._stopped.wait()

    async def _serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._stopped = trio.Event()
        try:
            with trio.CancelScope() as self._scope:
                async with run_postgres(self.cluster, self.port):
                    task_status.started()
                    await trio.sleep_forever()
        finally:
            self._stopped.set()


@dataclass
class Broker:
    process: ChildProcess
    bootstrap_servers: str

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)


@dataclass
class Dependencies:
    postgres: PostgresServer
    broker: Broker
    loop: trio_asyncio.TrioEventLoop

    async def fresh_shards(self, tag: str, chains: list[Chain]) -> list[str]:
        """New shard databases from the template, holding every chain's order in status ``created``."""
        admin = dsn(self.postgres.port, "postgres")
        names = [f"chaos_{tag}_{shard}" for shard in range(SHARDS)]
        await self.loop.run_aio_coroutine(_execute(admin, *(f"CREATE DATABASE {n} TEMPLATE {TEMPLATE}" for n in names)))
        urls = [dsn(self.postgres.port, name) for name in names]
        for shard, url in enumerate(urls):
            rows = [(c.order_id, c.user_id, AMOUNT, CURRENCY) for c in chains if shard_for(c.user_id, SHARDS) == shard]
            await self.loop.run_aio_coroutine(_insert_orders(url, rows))
        return urls


async def _execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _insert_orders(url: str, rows: list[tuple[str, str, int, str]]) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany("INSERT INTO orders (order_id, user_id, status, amount, currency) "
                               "VALUES ($1, $2, 'created', $3, $4)", rows)
    finally:
        await conn.close()


@asynccontextmanager
async def open_dependencies() -> AsyncIterator[Dependencies]:
    """PostgreSQL with a migrated template database, and a broker; stopped on exit."""
    async with open_pg_cluster() as cluster, open_asyncio_loop() as loop, trio.open_nursery() as nursery:
        postgres = PostgresServer(cluster, free_port(), nursery)
        await postgres.start()
        admin = dsn(postgres.port, "postgres")
        await loop.run_aio_coroutine(_execute(admin, f"CREATE DATABASE {TEMPLATE}"))
        await loop.run_aio_coroutine(migrate_dsn(dsn(postgres.port, TEMPLATE), dt.datetime.now(dt.UTC).date()))
        port = free_port()
        async with open_child(broker_argv(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as process:
            broker = Broker(process, f"127.0.0.1:{port}")
            try:
                with trio.fail_after(30):
                    while True:  # polled: a port has nothing to wait on
                        if await accepting(port):
                            break
                        await trio.sleep(0.05)
                yield Dependencies(postgres, broker, loop)
            finally:
                broker.thaw()  # a stopped broker would not act on SIGTERM
        nursery.cancel_scope.cancel()
