"""The soak's system: the processes of one mode's Procfile on the embedded PostgreSQL (and broker).

kafka mode (``Procfile``): ingest, api and two workers on the embedded broker. http mode
(``Procfile.http``): ingest calling the api's internal routes over HTTP (its forwarder batching
concurrent webhooks into one call) and the api writing to PostgreSQL — no broker, no topics, no
workers. Each is a real ``python -m`` process (``webhooks.bench.stack.service``) on seeded shards
(``seeded_shards``: order-i of user-i, so every webhook the load sends is about an order that
exists). Yields what the sampler measures: every process by name.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
import psutil
import trio
import trio_asyncio

from shared.topics import ALL_TOPICS, DISPUTES, ORDERS, admin_client, create_topics
from webhooks.bench.ingest_modes import TOKEN, WHSEC
from webhooks.bench.stack import group_settled, seeded_shards, service
from webhooks.embedded import free_port

USERS = 1_000
PARTITIONS = 6
WORKERS = 2


@dataclass(frozen=True)
class SoakStack:
    ingest_url: str  # base of the webhook routes
    ingest_metrics_url: str | None  # None: nothing to scrape (http mode has no broker acknowledgements)
    processes: dict[str, psutil.Process]  # ingest, api (, worker-1, worker-2 in kafka mode)
    database_urls: list[str]


@asynccontextmanager
async def open_soak_stack(loop: trio_asyncio.TrioEventLoop, pg_port: int,
                          bootstrap: str | None) -> AsyncIterator[SoakStack]:
    """The Procfile's system: with a broker (``bootstrap``) kafka mode — the api, two workers once
    their group has settled, ingest producing; without one ``Procfile.http`` — the api, then ingest
    calling it (``API_BASE_URL``, presenting ``INTERNAL_TOKEN``)."""
    urls = await seeded_shards(loop, pg_port, f"soak_{uuid.uuid4().hex[:6]}", orders=USERS)
    common = {"WEBHOOK_MODE": "http", "DATABASE_URLS": ",".join(urls), "INTERNAL_TOKEN": TOKEN}
    if bootstrap is not None:
        prefix = f"soak{uuid.uuid4().hex[:6]}."
        await trio.to_thread.run_sync(create_topics, admin_client(bootstrap), [prefix + t for t in ALL_TOPICS],
                                      PARTITIONS)
        common = {**common, "WEBHOOK_MODE": "kafka", "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TOPIC_PREFIX": prefix}
    processes: dict[str, psutil.Process] = {}
    async with AsyncExitStack() as stack:
        api_port = free_port()
        api = await stack.enter_async_context(service(["-m", "api"], {
            **common, "API_PORT": str(api_port), "API_GRPC_PORT": str(free_port()),
            "API_TOKENS": "soak-public-token"}, api_port))
        processes["api"] = psutil.Process(api.pid)
        if bootstrap is not None:
            worker_ports = []
            for number in range(1, WORKERS + 1):
                port = free_port()
                worker = await stack.enter_async_context(service(["-m", "workers"], {
                    **common, "WORKERS_PORT": str(port), "KAFKA_SESSION_TIMEOUT": "2s"}, port))
                processes[f"worker-{number}"] = psutil.Process(worker.pid)
                worker_ports.append(port)
            await _wait_partitions_shared(worker_ports, [prefix + ORDERS, prefix + DISPUTES])
        ingest_port = free_port()
        calls_api = {} if bootstrap is not None else {"API_BASE_URL": f"http://127.0.0.1:{api_port}"}
        ingest = await stack.enter_async_context(service(["-m", "ingest"], {
            **common, "INGEST_PORT": str(ingest_port), "WEBHOOK_SECRETS": WHSEC, **calls_api}, ingest_port))
        processes = {"ingest": psutil.Process(ingest.pid), **processes}
        base = f"http://127.0.0.1:{ingest_port}"
        yield SoakStack(f"{base}/webhooks/payments", f"{base}/metrics" if bootstrap is not None else None,
                        processes, urls)


async def _wait_partitions_shared(ports: list[int], topics: list[str]) -> None:
    """Until every worker owns partitions of each topic and together all of them: the group has settled,
    so the load does not start in a rebalance."""
    async with httpx.AsyncClient(timeout=2.0) as client:
        with trio.fail_after(60):
            while True:
                texts = [(await client.get(f"http://127.0.0.1:{port}/metrics")).text for port in ports]
                if all(group_settled(texts, topic, PARTITIONS) for topic in topics):
                    return
                await trio.sleep(0.2)

