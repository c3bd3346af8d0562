"""Sync modes (http, grpc) against a real api process that goes away and comes back mid-stream."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio
import trio_asyncio

from ingest.service import serve_ingest
from shared.settings import Settings
from tests.conftest import TEST_API_TOKEN
from tests.webhook_requests import encode, order_webhook, signed_headers
from webhooks.child_process import open_child
from webhooks.devstack import wait_ready
from webhooks.embedded import free_port

USERS = [f"usr_{i}" for i in range(20)]


@asynccontextmanager
async def api_process(env: dict[str, str], port: int, grpc_port: int, mode: str) -> AsyncIterator[None]:
    env = {**env, "API_PORT": str(port), "API_GRPC_PORT": str(grpc_port), "WEBHOOK_MODE": mode}
    async with open_child([sys.executable, "-m", "api"], env=env) as process:
        await wait_ready(f"http://127.0.0.1:{port}/readyz", process)
        yield


@asynccontextmanager
async def sync_ingest(settings: Settings, api_port: int, grpc_port: int, mode: str) -> AsyncIterator[httpx.AsyncClient]:
    resilient = settings.replace(
        webhook_mode=mode, ingest_port=0, api_base_url=f"http://127.0.0.1:{api_port}",
        api_grpc_target=f"127.0.0.1:{grpc_port}", api_timeout_seconds=2,
        api_retry_attempts=2, api_retry_base_delay_seconds=0.05, breaker_failure_threshold=3,
        breaker_reset_timeout_seconds=1)
    shutdown = trio.Event()
    async with trio_asyncio.open_loop() as loop, trio.open_nursery() as nursery:
        url = (await nursery.start(serve_ingest, resilient, loop, shutdown))[0]
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield client
        shutdown.set()


async def post_order_webhook(client: httpx.AsyncClient, user: str, status: str, seq: int) -> tuple[str, int]:
    payload = order_webhook(order_id=f"ord_{user}", user_id=user, status=status,
                            occurred_at=f"2026-11-20T10:{seq // 60:02d}:{seq % 60:02d}Z")
    body = encode(payload)
    response = await client.post("/webhooks/payments/orders", content=body, headers=signed_headers(body))
    return payload["provider_event_id"], response.status_code


@pytest.mark.parametrize("mode", ["http", "grpc"])
async def test_api_outage_gives_502_then_fast_503_then_recovers(settings: Settings, service_env: dict[str, str],
                                                                mode: str) -> None:
    port, grpc_port = free_port(), free_port()
    accepted: dict[str, str] = {}  # provider_event_id -> order id, for every 202
    statuses: list[int] = []
    with trio.fail_after(90):
        async with sync_ingest(settings, port, grpc_port, mode) as ingest:
            async with api_process(service_env, port, grpc_port, mode):
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                             headers={"Authorization": f"Bearer {TEST_API_TOKEN}"}) as api:
                    for user in USERS:
                        body = {"order_id": f"ord_{user}", "user_id": user, "amount": 1999, "currency": "EUR"}
                        assert (await api.post("/orders", json=body)).status_code == 201
                for seq, user in enumerate(USERS[:10]):
                    event, status = await post_order_webhook(ingest, user, "authorized", seq)
                    assert status == 202
                    accepted[event] = f"ord_{user}"
            # the api is gone: connection refused twice (2 attempts), so 502; the third failed attempt opens
            # the circuit, in the middle of the second call, whose retry is then refused: 503 from there on
            for seq, user in enumerate(USERS[10:16], start=10):
                statuses.append((await post_order_webhook(ingest, user, "authorized", seq))[1])
            assert statuses == [502] + [503] * 5
            started = trio.current_time()
            body = encode(order_webhook())
            open_answer = await ingest.post("/webhooks/payments/orders", content=body, headers=signed_headers(body))
            assert open_answer.status_code == 503 and int(open_answer.headers["retry-after"]) >= 1
            assert trio.current_time() - started < 0.5  # fails fast, no call made
            async with api_process(service_env, port, grpc_port, mode):
                seq = 100
                while True:  # the breaker lets a trial through once the reset timeout passed
                    seq += 1
                    event, status = await post_order_webhook(ingest, USERS[10], "authorized", seq)
                    if status == 202:
                        accepted[event] = f"ord_{USERS[10]}"
                        break
                    assert status == 503
                    await trio.sleep(0.2)  # a provider's retry interval
                for seq, user in enumerate(USERS[11:], start=200):
                    event, status = await post_order_webhook(ingest, user, "authorized", seq)
                    assert status == 202
                    accepted[event] = f"ord_{user}"
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                             headers={"Authorization": f"Bearer {TEST_API_TOKEN}"}) as api:
                    stored = set()
                    for order_id in set(accepted.values()):
                        events = (await api.get(f"/orders/{order_id}")).json()["events"]
                        stored |= {e["provider_event_id"] for e in events}
    assert set(accepted) <= stored  # no webhook answered 202 is missing
