"""Each process starts, answers /healthz and /readyz, and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal

import httpx
import pytest
import trio

from tests.processes import running_service
from webhooks.embedded import free_port


@pytest.mark.parametrize("name", ["api", "ingest", "workers", "api-grpc"])
async def test_ready_then_sigterm_exits_zero(name: str, service_env: dict[str, str]) -> None:
    env = service_env
    if name == "api-grpc":  # the api serves UpdatesService too, and stops it on SIGTERM
        name, env = "api", {**service_env, "WEBHOOK_MODE": "grpc", "API_GRPC_PORT": str(free_port())}
    with trio.fail_after(60):
        async with running_service(name, env) as service:
            async with httpx.AsyncClient(base_url=service.url) as client:
                assert (await client.get("/healthz")).json() == {"status": "alive"}
                ready = (await client.get("/readyz")).json()
                assert ready["status"] == "ready" and set(ready["checks"].values()) == {"ok"}
                # the client stays connected (keep-alive): that must not hold up the shutdown
                service.process.send_signal(signal.SIGTERM)
                with trio.fail_after(3):  # well inside SHUTDOWN_GRACE=5s
                    assert await service.process.wait() == 0


async def test_api_is_alive_but_not_ready_while_a_shard_is_unreachable(service_env: dict[str, str]) -> None:
    dead_shard = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    env = {**service_env, "DATABASE_URLS": service_env["DATABASE_URLS"].split(",")[0] + "," + dead_shard}
    with trio.fail_after(60):
        async with running_service("api", env, wait=False) as service:
            async with httpx.AsyncClient(base_url=service.url) as client:
                response = await client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["shard0"] == "ok"
    assert checks["shard1"].startswith("DatabaseUnavailable")


async def test_ingest_in_http_mode_is_not_ready_without_the_api(service_env: dict[str, str]) -> None:
    env = {**service_env, "WEBHOOK_MODE": "http", "API_BASE_URL": f"http://127.0.0.1:{free_port()}"}
    with trio.fail_after(60):
        async with running_service("ingest", env, wait=False) as service:
            async with httpx.AsyncClient(base_url=service.url) as client:
                response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["api"].startswith("ConnectError")
