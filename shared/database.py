"""The trio↔asyncio bridge for asyncpg: one asyncio loop per process, one pool per shard.

asyncpg only speaks asyncio, so it runs on a trio-asyncio loop. Each crossing of
that boundary costs ~73 µs of CPU (FIELD-NOTES), so the unit of crossing here is a
whole unit of work — a function that receives the shard's pool and runs a
transaction — never a single statement. ``Database.run`` is the only crossing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import ParamSpec, TypeVar

import asyncpg
import trio
import trio_asyncio

from shared.errors import DatabaseUnavailable

T = TypeVar("T")
P = ParamSpec("P")

# What "the database is not there right now" looks like from asyncpg.
_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)

Work = Callable[..., Awaitable[T]]


class Database:
    """Per-shard asyncpg pools, driven from trio."""

    def __init__(self, loop: trio_asyncio.TrioEventLoop, pools: Sequence[asyncpg.Pool]) -> None:
        self._loop = loop
        self._pools = tuple(pools)

    @property
    def shard_count(self) -> int:
        return len(self._pools)

    async def run(self, shard: int, work: Callable[..., Awaitable[T]], *args: object) -> T:
        """Run ``await work(pool, *args)`` on the asyncio side: one crossing."""
        return await self._loop.run_aio_coroutine(_translated(work, self._pools[shard], *args))

    async def ping(self, shard: int) -> None:
        await self.run(shard, _select_one)


async def _translated(work: Callable[..., Awaitable[T]], pool: asyncpg.Pool, *args: object) -> T:
    try:
        return await work(pool, *args)
    except _UNAVAILABLE as exc:
        raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}: {exc}") from exc


async def _select_one(pool: asyncpg.Pool) -> None:
    await pool.fetchval("SELECT 1")


async def _create_pool(dsn: str, max_size: int) -> asyncpg.Pool:
    # min_size=0: the process starts (and reports not-ready) while a shard is down.
    return await asyncpg.create_pool(dsn, min_size=0, max_size=max_size, command_timeout=30)


@asynccontextmanager
async def open_database(
    loop: trio_asyncio.TrioEventLoop, dsns: Sequence[str], *, max_size: int = 4
) -> AsyncIterator[Database]:
    """Open one pool per shard DSN on ``loop``; close them (shielded, bounded) on exit."""
    pools: list[asyncpg.Pool] = []
    try:
        for dsn in dsns:
            pools.append(await loop.run_aio_coroutine(_create_pool(dsn, max_size)))
        yield Database(loop, pools)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            for pool in pools:
                await loop.run_aio_coroutine(pool.close())
