"""The ingest process: the processor of ``WEBHOOK_MODE`` and the HTTP server.

kafka: an idempotent producer with its poll task. http/grpc: the forwarder actor, which
sends concurrent webhooks' updates to the api as batch calls, behind the retry policy and
the circuit-breaker actor. Both tasks are owned here and end
after the server has drained. The sync modes need ``INTERNAL_TOKEN`` (the api's
internal endpoint refuses a call without it), so they refuse to start without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import cast

import httpx
import trio
import trio_asyncio
from hypercorn.typing import Framework

from ingest.api_client import HttpApiClient
from ingest.app import create_app
from ingest.breaker_actor import CircuitBreakerActor
from ingest.circuit_breaker import BreakerConfig
from ingest.grpc_client import GrpcApiClient
from ingest.processors import KafkaProcessor, Processor, SyncProcessor
from ingest.update_forwarder import UpdateForwarder
from shared.broker_probe import broker_check, producer_check
from shared.errors import BrokerUnavailable, GatewayTimeout, WebhookError
from shared.http_server import serve_http
from shared.kafka_producer import KafkaProducer
from shared.probes import Check
from shared.settings import Settings

REQUIRED = ("webhook_secrets",)
DELIVERY_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Mode:
    processor: Processor
    checks: dict[str, Check]
    deadline_seconds: float
    deadline_error: Callable[[], WebhookError]


def sync_deadline_seconds(settings: Settings) -> float:
    """Long enough for every attempt and every backoff of one call, plus one ``API_TIMEOUT`` of
    waiting in the forwarder's mailbox for a call slot (a batch forms while calls are in flight)
    and the next-call wait (``API_NEXT_CALL_AFTER``)."""
    backoff: float = sum(
        min(settings.api_retry_base_delay_seconds * 2 ** n, settings.api_retry_max_delay_seconds) * 1.25
        for n in range(settings.api_retry_attempts - 1))
    return ((settings.api_retry_attempts + 1) * settings.api_timeout_seconds + backoff
            + settings.api_next_call_after_seconds + 1)


def require_mode_settings(settings: Settings) -> None:
    """What ``WEBHOOK_MODE`` needs beyond ``REQUIRED``: a ``ConfigError`` (exit 2, one line) when missing."""
    if settings.webhook_mode != "kafka":
        settings.require("internal_token", because=f"when WEBHOOK_MODE={settings.webhook_mode}: ingest presents it "
                                                   "to the api, which refuses every call without it")


def open_mode(settings: Settings, loop: trio_asyncio.TrioEventLoop, nursery: trio.Nursery
              ) -> AbstractAsyncContextManager[Mode]:
    if settings.webhook_mode == "kafka":
        return open_kafka_mode(settings, nursery)
    return open_sync_mode(settings, loop, nursery)


@asynccontextmanager
async def open_kafka_mode(settings: Settings, nursery: trio.Nursery) -> AsyncIterator[Mode]:
    producer = KafkaProducer(settings.kafka_bootstrap_servers, delivery_timeout_seconds=DELIVERY_TIMEOUT_SECONDS)
    await nursery.start(producer.run)
    checks = {"broker": broker_check(settings.kafka_bootstrap_servers), "producer": producer_check(producer)}
    yield Mode(KafkaProcessor(producer, settings), checks,
               DELIVERY_TIMEOUT_SECONDS + 1, lambda: BrokerUnavailable("the broker did not acknowledge in time"))


async def _grpc_client(settings: Settings, loop: trio_asyncio.TrioEventLoop) -> GrpcApiClient:
    return GrpcApiClient(settings, loop)  # made on the asyncio side: the channel binds to its loop


def _api_check(base_url: str) -> Check:
    async def check() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
            (await client.get("/healthz")).raise_for_status()

    return check


@asynccontextmanager
async def open_sync_mode(settings: Settings, loop: trio_asyncio.TrioEventLoop,
                         nursery: trio.Nursery) -> AsyncIterator[Mode]:
    breaker = CircuitBreakerActor(BreakerConfig(
        settings.breaker_failure_threshold, settings.breaker_reset_timeout_seconds,
        retry_after_spread_seconds=settings.breaker_retry_after_spread_seconds))
    await nursery.start(breaker.run)
    inner: HttpApiClient | GrpcApiClient
    check: Check
    if settings.webhook_mode == "grpc":
        grpc_client: GrpcApiClient = await loop.run_aio_coroutine(_grpc_client(settings, loop))
        inner, check = grpc_client, grpc_client.ping
    else:
        inner = HttpApiClient(settings, encoding=settings.api_encoding)
        check = _api_check(settings.api_base_url)
    client = UpdateForwarder(inner, breaker, settings)  # concurrent webhooks share batch calls
    await nursery.start(client.run)
    try:
        yield Mode(SyncProcessor(client), {"api": check},
                   sync_deadline_seconds(settings), lambda: GatewayTimeout("the api did not answer in time"))
    finally:
        with trio.CancelScope(shield=True):
            await client.aclose()


async def serve_ingest(
    settings: Settings,
    loop: trio_asyncio.TrioEventLoop,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    require_mode_settings(settings)
    async with trio.open_nursery() as nursery, open_mode(settings, loop, nursery) as mode:
        app = create_app(settings, mode.processor, mode.checks, deadline_seconds=mode.deadline_seconds,
                         deadline_error=mode.deadline_error)
        # WebhookEndpoint types ASGI messages as plain dicts, not as hypercorn's TypedDicts
        await serve_http(cast(Framework, app), settings.bind_host, settings.ingest_port, shutdown,
                         grace_seconds=settings.shutdown_grace_seconds, task_status=task_status)
        nursery.cancel_scope.cancel()
