"""Session-wide embedded PostgreSQL and broker; per-test databases and topic prefixes.

The dependencies run in one ``webhooks deps`` child for the whole session (started
once: fast), and die with it. Each test gets fresh shard databases cloned from a
migrated template and its own topic prefix, so tests never see each other's rows
or records.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from shared.migrations import migrate_dsn
from shared.settings import Secret, SecretBytes, Settings

START_DEADLINE_SECONDS = 60
TEST_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"test-secret-0123456789abcdef").decode()
TEST_INTERNAL_TOKEN = "internal-test-token"
TEST_STRIPE_SECRET = "whsec_test0123456789abcdefghijklmnopq"  # Stripe keys with the literal text
TEST_API_TOKEN = "api-test-token"
_counter = itertools.count()
# The commands under test must not pick up a developer's running ``webhooks dev``.
os.environ["WEBHOOKS_CONNECTION_FILE"] = os.devnull + ".absent"


@dataclass(frozen=True)
class Deps:
    postgres_admin_url: str  # the "postgres" maintenance database of the embedded server
    kafka_bootstrap_servers: str

    def url(self, database: str) -> str:
        parts = urlsplit(self.postgres_admin_url)
        return urlunsplit(parts._replace(path=f"/{database}"))


def _read_first_line(process: subprocess.Popen[str]) -> str:
    """The deps child's address line, or a clear failure if it dies or hangs."""
    timer = threading.Timer(START_DEADLINE_SECONDS, process.kill)
    timer.start()
    try:
        line = process.stdout.readline() if process.stdout else ""
    finally:
        timer.cancel()
    if not line:
        raise RuntimeError(f"`webhooks deps` exited ({process.poll()}) before printing its addresses")
    return line


@pytest.fixture(scope="session")
def deps() -> Iterator[Deps]:
    with subprocess.Popen(
        [sys.executable, "-m", "webhooks", "deps", "--shards", "1"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as process:
        try:
            addresses = json.loads(_read_first_line(process))
            shard_url = addresses["database_urls"][0]
            admin_url = urlunsplit(urlsplit(shard_url)._replace(path="/postgres"))
            yield Deps(admin_url, addresses["kafka_bootstrap_servers"])
        finally:
            process.send_signal(signal.SIGTERM)
            # PostgreSQL's shutdown checkpoint over every test's databases, the broker, then removing the
            # data directory: each child has a 10 s grace, and a slow VM took over 30 s in all (exit 0)
            process.wait(timeout=120)


async def _execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_database(deps: Deps) -> str:
    """A migrated database every test's shards are cloned from."""
    asyncio.run(_execute(deps.postgres_admin_url, "CREATE DATABASE template_webhooks"))
    asyncio.run(migrate_dsn(deps.url("template_webhooks"), dt.datetime.now(dt.UTC).date()))
    return "template_webhooks"


def new_database(deps: Deps, template: str | None) -> str:
    name = f"t{os.getpid()}_{next(_counter)}"
    clause = f" TEMPLATE {template}" if template else ""
    asyncio.run(_execute(deps.postgres_admin_url, f"CREATE DATABASE {name}{clause}"))
    return deps.url(name)


@pytest.fixture
def shard_urls(deps: Deps, template_database: str) -> tuple[str, str]:
    """Two fresh, migrated shard databases for this test."""
    return new_database(deps, template_database), new_database(deps, template_database)


@pytest.fixture
def empty_database_url(deps: Deps) -> str:
    """A fresh database with no schema at all (for migration tests)."""
    return new_database(deps, None)


@pytest.fixture
def settings(deps: Deps, shard_urls: tuple[str, str]) -> Settings:
    """Settings for in-process services: this test's shards and topic prefix."""
    return Settings(
        database_urls=shard_urls,
        kafka_bootstrap_servers=deps.kafka_bootstrap_servers,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        topic_partitions=3,
        webhook_secrets=(SecretBytes(b"test-secret-0123456789abcdef"),),
        stripe_webhook_secrets=(Secret(TEST_STRIPE_SECRET),),
        internal_token=Secret(TEST_INTERNAL_TOKEN),
        api_tokens=(Secret(TEST_API_TOKEN),),
        kafka_session_timeout_seconds=2.0,
    )


@pytest.fixture
def service_env(settings: Settings) -> dict[str, str]:
    """The environment of a service process for this test (as a deployment would set it)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URLS": ",".join(settings.database_urls),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "TOPIC_PREFIX": settings.topic_prefix,
        "TOPIC_PARTITIONS": str(settings.topic_partitions),
        "WEBHOOK_SECRETS": TEST_WEBHOOK_SECRET,
        "STRIPE_WEBHOOK_SECRETS": TEST_STRIPE_SECRET,
        "INTERNAL_TOKEN": TEST_INTERNAL_TOKEN,
        "API_TOKENS": TEST_API_TOKEN,
        "SHUTDOWN_GRACE": "5s",
        "KAFKA_SESSION_TIMEOUT": "2s",
        "LOG_LEVEL": "info",
    }
