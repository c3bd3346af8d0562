"""The api as a real process (``python -m api``, HTTP and gRPC) on two fresh shards, for the fuzz tests.

A fuzz example must leave no row behind, so the process comes seeded (one order, one dispute,
for reads and refusals that reach the database) and ``assert_nothing_written`` compares every
table's row count on every shard with the counts at the previous check (the first: after
seeding): a cheap query per shard over one connection each, so it runs after every example.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import asyncpg
import httpx

from tests.conftest import TEST_API_TOKEN, TEST_INTERNAL_TOKEN, Deps, new_database
from tests.processes import sync_service
from webhooks.embedded import free_port

TABLES = ("orders", "order_events", "disputes", "dispute_events", "order_ids")
_COUNTS = "SELECT " + ", ".join(f"(SELECT count(*) FROM {table})" for table in TABLES)
PUBLIC = f"Bearer {TEST_API_TOKEN}"
INTERNAL = f"Bearer {TEST_INTERNAL_TOKEN}"
SEEDED_ORDER = {"order_id": "fuzz-order", "user_id": "fuzz-owner", "amount": 1000, "currency": "EUR"}
SEEDED_DISPUTE = "fuzz-dispute"
_NO_POOL = httpx.Limits(max_keepalive_connections=0)


class ShardRows:
    """Row counts of every table of every shard, over one connection per shard on a private asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: Sequence[asyncpg.Connection]) -> None:
        self._loop = loop
        self._connections = connections

    def counts(self) -> list[dict[str, int]]:
        return [dict(zip(TABLES, self._loop.run_until_complete(conn.fetchrow(_COUNTS)), strict=True))
                for conn in self._connections]


@contextmanager
def open_shard_rows(dsns: Sequence[str]) -> Iterator[ShardRows]:
    loop = asyncio.new_event_loop()
    connections: list[asyncpg.Connection] = []
    try:
        for dsn in dsns:
            connections.append(loop.run_until_complete(asyncpg.connect(dsn)))
        yield ShardRows(loop, connections)
    finally:
        for conn in connections:
            loop.run_until_complete(conn.close())
        loop.close()


@dataclass
class ApiProcess:
    url: str
    grpc_target: str
    http: httpx.Client  # no default headers: each request carries exactly what the example says
    unpooled: httpx.Client  # a new connection for every request
    rows: ShardRows
    counted: list[dict[str, int]]  # after seeding, then after each check

    def assert_nothing_written(self) -> None:
        """No row added or removed since the last check (so a failure names the example that wrote)."""
        before, self.counted = self.counted, self.rows.counts()
        assert self.counted == before, "a refused request changed the rows"

    def assert_alive(self) -> None:
        """A new connection is answered (a pooled one could still be served by a server on its way down)."""
        assert self.unpooled.get("/healthz").status_code == 200, "the api stopped answering"


@contextmanager
def running_api(deps: Deps, template_database: str) -> Iterator[ApiProcess]:
    dsns = [new_database(deps, template_database) for _ in range(2)]
    grpc_port = free_port()
    env = {"INTERNAL_TOKEN": TEST_INTERNAL_TOKEN, "API_TOKENS": TEST_API_TOKEN, "DATABASE_URLS": ",".join(dsns),
           "WEBHOOK_MODE": "grpc", "API_GRPC_PORT": str(grpc_port)}
    with (sync_service("api", env) as url, httpx.Client(base_url=url, timeout=20) as http,
          httpx.Client(base_url=url, timeout=10, limits=_NO_POOL) as unpooled, open_shard_rows(dsns) as rows):
        _seed(http)
        yield ApiProcess(url, f"127.0.0.1:{grpc_port}", http, unpooled, rows, rows.counts())


def _seed(http: httpx.Client) -> None:
    created = http.post("/orders", json=SEEDED_ORDER, headers={"Authorization": PUBLIC})
    assert created.status_code == 201, created.text
    opened = {**SEEDED_ORDER, "dispute_id": SEEDED_DISPUTE, "provider_event_id": "pe-opened", "status": "opened",
              "reason": "fraudulent", "occurred_at": "2026-11-20T12:00:00Z", "event_id": "ev-opened",
              "received_at": "2026-11-20T12:00:01Z"}
    applied = http.post("/internal/updates/disputes", json=opened, headers={"Authorization": INTERNAL})
    assert applied.status_code == 200, applied.text
