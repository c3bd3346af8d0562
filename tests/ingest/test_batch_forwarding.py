"""Concurrent webhooks through ingest (sync modes) to a real api process: they share batch calls and
each still gets its own answer; every event answered 2xx is stored once."""

from __future__ import annotations

import httpx
import pytest
import trio
from prometheus_client import REGISTRY

from shared.settings import Settings
from tests.conftest import TEST_API_TOKEN
from tests.ingest.test_http_mode import api_process, sync_ingest
from tests.webhook_requests import encode, order_webhook, signed_headers
from webhooks.embedded import free_port

USERS = [f"batch_{n}" for n in range(30)]


def batch_calls() -> float:
    return REGISTRY.get_sample_value("ingest_api_batch_size_count") or 0.0


async def post_all(ingest: httpx.AsyncClient, bodies: list[bytes]) -> list[int]:
    statuses = [0] * len(bodies)

    async def post(index: int) -> None:
        body = bodies[index]
        statuses[index] = (await ingest.post("/webhooks/payments/orders", content=body,
                                             headers=signed_headers(body))).status_code

    async with trio.open_nursery() as nursery:
        for index in range(len(bodies)):
            nursery.start_soon(post, index)
    return statuses


@pytest.mark.parametrize(("mode", "encoding"), [("http", "json"), ("http", "protobuf"), ("grpc", "json")])
async def test_concurrent_webhooks_share_batch_calls_and_keep_their_own_answers(
        settings: Settings, service_env: dict[str, str], mode: str, encoding: str) -> None:
    port, grpc_port = free_port(), free_port()
    authorized = [encode(order_webhook(order_id=f"ord_{u}", user_id=u, status="authorized",
                                       occurred_at="2026-11-20T10:00:00Z")) for u in USERS]
    unknown = [encode(order_webhook(order_id=f"nope_{n}", user_id=f"nobody_{n}")) for n in range(5)]
    backwards = [encode(order_webhook(order_id=f"ord_{u}", user_id=u, status="pending",
                                      occurred_at="2026-11-20T11:00:00Z")) for u in USERS[:5]]
    with trio.fail_after(90):
        async with api_process(service_env, port, grpc_port, mode), \
                sync_ingest(settings.replace(api_encoding=encoding), port, grpc_port, mode) as ingest, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                  headers={"Authorization": f"Bearer {TEST_API_TOKEN}"}) as api:
            for user in USERS:
                body = {"order_id": f"ord_{user}", "user_id": user, "amount": 1999, "currency": "EUR"}
                assert (await api.post("/orders", json=body)).status_code == 201
            calls_before = batch_calls()
            assert await post_all(ingest, authorized + unknown) == [202] * 30 + [404] * 5
            # a provider's retries (200 duplicate) beside invalid transitions (authorized → pending: 422)
            assert await post_all(ingest, authorized[:5] + backwards) == [200] * 5 + [422] * 5
            calls = batch_calls() - calls_before
            assert 2 <= calls < 45  # 45 webhooks, fewer calls: they were batched
            for user in USERS:
                order = (await api.get(f"/orders/ord_{user}")).json()
                assert order["status"] == "authorized" and len(order["events"]) == 1
