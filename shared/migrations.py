"""Versioned SQL migrations, applied to every shard, recorded, safe to run twice.

Files in ``shared/migrations`` named ``NNNN_description.sql`` are applied in order,
each in its own transaction together with its row in ``schema_migrations``. An
advisory lock serialises concurrent runs (two processes migrating at start).
These are asyncio functions: the CLI runs them with ``asyncio.run``; services run
them through ``Database.run``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x5EB400C5  # any constant; shared by every migrating process
PARTITION_MONTHS_AHEAD = 3


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        version, _, name = path.stem.partition("_")
        migrations.append(Migration(version, name, path.read_text()))
    return migrations


async def migrate(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    """Apply what is missing; returns the versions applied by this call."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        applied = []
        for migration in migrations:
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", migration.version, migration.name
                )
            applied.append(migration.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


def months_from(today: dt.date, count: int) -> list[dt.date]:
    """First days of this month and the ``count`` months after it."""
    months, year, month = [], today.year, today.month
    for _ in range(count + 1):
        months.append(dt.date(year, month, 1))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


async def ensure_partitions(conn: asyncpg.Connection, today: dt.date,
                            months_ahead: int = PARTITION_MONTHS_AHEAD) -> list[str]:
    """Monthly ``dispute_events`` partitions for this month and the next ones."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        return [
            await conn.fetchval("SELECT ensure_dispute_events_partition($1)", month)
            for month in months_from(today, months_ahead)
        ]


async def migrate_dsn(dsn: str, today: dt.date) -> list[str]:
    """Migrate one shard and create its partitions ahead; for tools."""
    conn = await asyncpg.connect(dsn)
    try:
        applied = await migrate(conn, load_migrations())
        await ensure_partitions(conn, today)
        return applied
    finally:
        await conn.close()
