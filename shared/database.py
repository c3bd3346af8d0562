"""The trio↔asyncio bridge for asyncpg: one asyncio loop per process, one pool per shard.

asyncpg only speaks asyncio, so it runs on a trio-asyncio loop. Each crossing of
that boundary costs ~73 µs of CPU (FIELD-NOTES), so the unit of crossing here is a
whole unit of work — a function that receives the shard's pool and runs a
transaction — never a single statement. ``Database.run`` is the only crossing.

DSNs arrive as ``Dsn`` secrets and are revealed only to ``asyncpg.create_pool``; a
DSN asyncpg would misread is refused before it gets there (``ConfigError``, masked),
and the text of a translated error has the shard's password starred out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import ParamSpec, TypeVar

import asyncpg
import trio
import trio_asyncio

from shared.errors import DatabaseUnavailable
from shared.secret import Dsn, dsn_problem
from shared.settings import ConfigError

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

    def __init__(self, loop: trio_asyncio.TrioEventLoop, pools: Sequence[asyncpg.Pool], dsns: Sequence[Dsn]) -> None:
        self._loop = loop
        self._pools = tuple(pools)
        self._dsns = tuple(dsns)  # only to star the password out of error texts

    @property
    def shard_count(self) -> int:
        return len(self._pools)

    async def run(self, shard: int, work: Callable[..., Awaitable[T]], *args: object) -> T:
        """Run ``await work(pool, *args)`` on the asyncio side: one crossing."""
        result: T = await self._loop.run_aio_coroutine(_translated(work, self._dsns[shard], self._pools[shard], *args))
        return result

    async def ping(self, shard: int) -> None:
        await self.run(shard, _select_one)

    async def run_on_shards(self, calls: Mapping[int, Callable[[], Awaitable[object]]]) -> None:
        """``calls[shard]()`` on every shard concurrently; a shard that is down raises one
        ``DatabaseUnavailable`` (not trio's ``ExceptionGroup``), so callers map it like a single
        shard's failure — a 503 or a retry in place, never a 500."""
        try:
            async with trio.open_nursery() as nursery:
                for call in calls.values():
                    nursery.start_soon(call)
        except BaseExceptionGroup as group:
            unavailable, rest = group.split(DatabaseUnavailable)
            if rest is None and unavailable is not None:
                raise _first_leaf(unavailable) from None
            raise


def _first_leaf(group: BaseExceptionGroup[DatabaseUnavailable]) -> DatabaseUnavailable:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


async def _translated(work: Callable[..., Awaitable[T]], dsn: Dsn, pool: asyncpg.Pool, *args: object) -> T:
    try:
        return await work(pool, *args)
    except _UNAVAILABLE as exc:
        raise DatabaseUnavailable(dsn.scrub(f"database unavailable: {type(exc).__name__}: {exc}")) from exc


async def _select_one(pool: asyncpg.Pool) -> None:
    await pool.fetchval("SELECT 1")


async def _create_pool(dsn: Dsn, max_size: int) -> asyncpg.Pool:
    # min_size=0: the process starts (and reports not-ready) while a shard is down.
    return await asyncpg.create_pool(dsn.reveal(), min_size=0, max_size=max_size, command_timeout=30,
                                     reset=_nothing_to_reset)


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """A connection goes back to its pool as it came: no unit of work here uses LISTEN, SET, advisory
    locks or cursors (asyncpg still rolls back an open transaction). asyncpg's default reset query
    would cost every unit of work one more round trip."""


def checked_dsns(dsns: Sequence[Dsn | str]) -> tuple[Dsn, ...]:
    """``Dsn``s (a test or tool may hold plain text), refused with a masked line if asyncpg would misread one."""
    checked = tuple(dsn if isinstance(dsn, Dsn) else Dsn(dsn) for dsn in dsns)
    for shard, dsn in enumerate(checked):
        if (problem := dsn_problem(dsn.reveal())) is not None:
            raise ConfigError(f"DATABASE_URLS: shard{shard} ({dsn.masked()}) {problem}")
    return checked


@asynccontextmanager
async def open_database(
    loop: trio_asyncio.TrioEventLoop, dsns: Sequence[Dsn | str], *, max_size: int = 4
) -> AsyncIterator[Database]:
    """Open one pool per shard DSN on ``loop``; close them (shielded, bounded) on exit."""
    checked = checked_dsns(dsns)
    pools: list[asyncpg.Pool] = []
    try:
        for dsn in checked:
            pools.append(await loop.run_aio_coroutine(_create_pool(dsn, max_size)))
        yield Database(loop, pools, checked)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            for pool in pools:
                await loop.run_aio_coroutine(pool.close())
