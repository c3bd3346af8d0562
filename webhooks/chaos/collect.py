"""Gathering the audit's facts after a run: every event row, the final statuses, every dead letter."""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg
import trio
import trio_asyncio

from shared.settings import Settings
from webhooks.chaos.audit import Letter, StoredRow
from webhooks.dlq import read_letters

ROWS = {
    "orders": "SELECT order_id AS entity, provider_event_id, status, applied, id::float8 AS sequence, "
              "extract(epoch FROM stored_at)::float8 AS stored_at FROM order_events",
    "disputes": "SELECT dispute_id AS entity, provider_event_id, status, applied, "
                "extract(epoch FROM stored_at)::float8 AS sequence, extract(epoch FROM stored_at)::float8 AS stored_at "
                "FROM dispute_events",
}
FINAL = "SELECT order_id AS id, status FROM orders UNION ALL SELECT dispute_id, status FROM disputes"


async def _read_shard(url: str) -> tuple[list[StoredRow], dict[str, str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = [StoredRow(kind, r["entity"], r["provider_event_id"], r["status"], r["applied"], r["sequence"],
                          r["stored_at"]) for kind, sql in ROWS.items() for r in await conn.fetch(sql)]
        final = {r["id"]: r["status"] for r in await conn.fetch(FINAL)}
    finally:
        await conn.close()
    return rows, final


async def read_shards(loop: trio_asyncio.TrioEventLoop, urls: Sequence[str]) -> tuple[list[StoredRow], dict[str, str]]:
    rows: list[StoredRow] = []
    final: dict[str, str] = {}
    for url in urls:
        shard_rows, shard_final = await loop.run_aio_coroutine(_read_shard(url))
        rows += shard_rows
        final.update(shard_final)
    return rows, final


def _letter(reason: str, key: bytes | None, value: bytes | None) -> Letter:
    try:
        event = json.loads(value or b"")["data"]["provider_event_id"]
    except (ValueError, KeyError, TypeError):
        event = None
    return Letter(reason, event if isinstance(event, str) else None, key.decode(errors="replace") if key else None)


async def read_dead_letters(bootstrap_servers: str, topic_prefix: str) -> list[Letter]:
    settings = Settings(kafka_bootstrap_servers=bootstrap_servers, topic_prefix=topic_prefix)

    def read() -> list[Letter]:
        return [_letter(letter.header("dlq.reason"), letter.key, letter.value) for letter in read_letters(settings)]

    return await trio.to_thread.run_sync(read)
