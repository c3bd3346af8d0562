"""Each process starts, answers /healthz and /readyz, and stops cleanly on SIGTERM; and several run on one host:
a taken port is one line of configuration error, port 0 a free port the process logs."""

from __future__ import annotations

import signal
import socket
import sys

import httpx
import pytest
import trio

from tests.processes import logged_service, running_service
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


async def test_a_second_workers_on_a_taken_port_exits_2_with_one_line(service_env: dict[str, str]) -> None:
    with trio.fail_after(60):
        async with running_service("workers", service_env, wait=False) as first:
            port = first.url.rsplit(":", 1)[1]
            env = {**service_env, "WORKERS_PORT": port}
            second = await trio.run_process([sys.executable, "-m", "workers"], env=env,
                                            capture_stdout=True, capture_stderr=True, check=False)
    stderr = second.stderr.decode()
    assert second.returncode == 2, stderr
    assert stderr.splitlines() == [f"configuration error: WORKERS_PORT={port} is already in use on 127.0.0.1 "
                                   "(set another port, or 0 for a free one)"]


async def test_api_grpc_port_taken_exits_2_naming_it(service_env: dict[str, str]) -> None:
    env = {**service_env, "WEBHOOK_MODE": "grpc", "API_PORT": str(free_port())}
    with trio.fail_after(60), socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        api = await trio.run_process([sys.executable, "-m", "api"], env={**env, "API_GRPC_PORT": str(port)},
                                     capture_stdout=True, capture_stderr=True, check=False)
    stderr = api.stderr.decode()
    assert api.returncode == 2, stderr
    assert "Traceback" not in stderr  # grpc's core logs its own line about the bind before ours
    assert stderr.splitlines()[-1].startswith(f"configuration error: API_GRPC_PORT={port} ")


async def test_workers_on_port_zero_each_serve_on_a_port_of_their_own(service_env: dict[str, str]) -> None:
    env = {**service_env, "WORKERS_PORT": "0"}
    with trio.fail_after(60):
        async with logged_service("workers", env) as (_, first), logged_service("workers", env) as (_, second):
            urls = [(await output.wait_for_event("ready to serve"))["urls"][0] for output in (first, second)]
            async with httpx.AsyncClient() as client:
                for url in urls:
                    assert (await client.get(f"{url}/healthz")).json() == {"status": "alive"}
    assert len(set(urls)) == 2 and not any(url.endswith(":0") for url in urls)
