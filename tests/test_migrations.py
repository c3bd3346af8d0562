import asyncio
import datetime as dt

import asyncpg

from shared.migrations import ensure_partitions, load_migrations, migrate, migrate_dsn, months_from

TODAY = dt.date(2026, 11, 23)


def test_months_from_wraps_the_year() -> None:
    assert months_from(TODAY, 2) == [dt.date(2026, 11, 1), dt.date(2026, 12, 1), dt.date(2027, 1, 1)]


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row["tablename"] for row in rows}
    finally:
        await conn.close()


def test_migrate_is_recorded_and_safe_twice(empty_database_url: str) -> None:
    first = asyncio.run(migrate_dsn(empty_database_url, TODAY))
    second = asyncio.run(migrate_dsn(empty_database_url, TODAY))
    assert first == [m.version for m in load_migrations()]
    assert second == []
    tables = asyncio.run(_tables(empty_database_url))
    assert {"orders", "order_events", "disputes", "dispute_events", "dispute_events_default",
            "schema_migrations", "dispute_events_2026_11", "dispute_events_2027_02"} <= tables


def test_a_late_partition_takes_over_rows_from_the_default(empty_database_url: str) -> None:
    async def scenario() -> tuple[str, int]:
        conn = await asyncpg.connect(empty_database_url)
        try:
            await migrate(conn, load_migrations())
            await conn.execute(
                "INSERT INTO dispute_events VALUES ('d1', 'p1', 'e1', 'opened', 'fraud', 100, 'EUR',"
                " '2031-05-04T10:00:00Z', now(), true, NULL)"
            )
            await ensure_partitions(conn, dt.date(2031, 5, 1), months_ahead=0)
            where = await conn.fetchval("SELECT tableoid::regclass::text FROM dispute_events WHERE dispute_id = 'd1'")
            left = await conn.fetchval("SELECT count(*) FROM dispute_events_default")
            return where, left
        finally:
            await conn.close()

    assert asyncio.run(scenario()) == ("dispute_events_2031_05", 0)
