"""What every benchmark scenario sets up: seeded shard databases and real service processes."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

import asyncpg
import psutil
import trio_asyncio

from shared.migrations import migrate_dsn
from shared.sharding import shard_for
from webhooks.child_process import ChildProcess, open_child
from webhooks.devstack import wait_ready
from webhooks.embedded import create_databases, dsn

ORDERS = 1_000  # order-{i} belongs to user-{i}
SHARDS = 2


async def _seed_orders(url: str, shard: int, orders: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        rows = [(f"order-{i}", f"user-{i}") for i in range(orders) if shard_for(f"user-{i}", SHARDS) == shard]
        await conn.executemany(
            "INSERT INTO orders (order_id, user_id, status, amount, currency) VALUES ($1, $2, 'created', 1000, 'EUR')",
            rows)
    finally:
        await conn.close()


async def seeded_shards(loop: trio_asyncio.TrioEventLoop, pg_port: int, tag: str, orders: int = ORDERS) -> list[str]:
    """Fresh, migrated shard databases holding ``orders`` orders (order-i of user-i) in status ``created``."""
    names = [f"bench_{tag}_{shard}" for shard in range(SHARDS)]
    await create_databases(pg_port, names)
    urls = [dsn(pg_port, name) for name in names]
    for shard, url in enumerate(urls):
        await loop.run_aio_coroutine(migrate_dsn(url, dt.date.today()))
        await loop.run_aio_coroutine(_seed_orders(url, shard, orders))
    return urls


@asynccontextmanager
async def service(argv: list[str], env: Mapping[str, str], port: int) -> AsyncIterator[ChildProcess]:
    """A process (``python -m ...``) on ``port``, ready when its /readyz answers 200."""
    full_env = {"PATH": "/usr/bin:/bin", "LOG_LEVEL": "warning", **env}
    async with open_child([sys.executable, *argv], env=full_env) as process:
        await wait_ready(f"http://127.0.0.1:{port}/readyz", process)
        yield process


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def postgres_processes(port: int) -> list[psutil.Process]:
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "postgres" and str(port) in (process.info["cmdline"] or []):
            return [process, *process.children(recursive=True)]
    return []


def processes_with_argument(text: str) -> list[psutil.Process]:
    """Processes (and their children) with ``text`` in one of their arguments, e.g. a broker's listener URL."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(text in argument for argument in process.info["cmdline"] or []):
            found += [process, *process.children(recursive=True)]
    return found


def assigned_partitions(metrics_text: str, topic: str | None = None) -> int:
    """A worker's ``worker_assigned_partitions`` read from its /metrics text: of ``topic``, or of all."""
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in metrics_text.splitlines()
               if line.startswith("worker_assigned_partitions{") and (topic is None or f'"{topic}"' in line))


def group_settled(metrics_texts: Sequence[str], topic: str | None, partitions: int) -> bool:
    """No rebalance under way: every worker (one /metrics text each) owns some of ``topic``'s partitions
    (of all topics: None; a worker that has only just joined owns none until its rebalance is done),
    and together all ``partitions``."""
    owned = [assigned_partitions(text, topic) for text in metrics_texts]
    return min(owned, default=0) > 0 and sum(owned) == partitions
