"""Each process, run with bad and with good secrets, prints none of them: not on stderr, not in its
JSON logs, not in ``/readyz`` (a failing shard's error included) or ``/metrics``, and exits 2 with one
line naming the variable when a secret is malformed. Sync-mode ingest needs ``INTERNAL_TOKEN``."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from shared.service import PORT_VARIABLE
from shared.settings import Settings
from shared.topics import ALL_TOPICS, admin_client, create_topics
from tests.processes import Output
from tests.secret_words import BAD, GOOD, WEBHOOK_KEY, leaks
from tests.webhook_requests import encode, order_webhook, signed_headers
from webhooks.child_process import open_child
from webhooks.embedded import free_port


def _with_password(dsn: str, password: str) -> str:
    scheme, _, rest = dsn.partition("://")
    user, _, hosts = rest.partition("@")
    return f"{scheme}://{user}:{password}@{hosts}"


async def _bad_run(name: str, env: dict[str, str]) -> tuple[int, str]:
    with trio.fail_after(30):  # a process that accepts the value runs on: that fails here
        result = await trio.run_process([sys.executable, "-m", name], env=env, capture_stdout=True,
                                        capture_stderr=True, check=False)
    return result.returncode, result.stderr.decode() + result.stdout.decode()


async def _requests(name: str, url: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        responses = [await client.get(path) for path in ("/healthz", "/readyz", "/metrics", "/nowhere")]
        if name.startswith("ingest"):
            body = encode(order_webhook())
            for key in (WEBHOOK_KEY, b"ZEBRA-but-not-the-key"):
                responses.append(await client.post("/webhooks/payments/orders", content=body,
                                                   headers=signed_headers(body, secret=key)))
        if name == "api":
            for token in ("PANGOLIN-api-4417", "QUOKKA-internal-7731", "NARWHAL-api-0000"):
                responses.append(await client.get("/orders/o1", headers={"Authorization": f"Bearer {token}"}))
        responses.append(await client.get("/metrics"))  # after the requests: their series too
    return responses


async def _good_run(name: str, env: dict[str, str], stderr_path: Path) -> tuple[str, list[httpx.Response]]:
    module = name.split("-")[0]
    with stderr_path.open("wb") as stderr, trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            async with open_child([sys.executable, "-m", module], env=env, stdout=subprocess.PIPE,
                                  stderr=stderr) as process:
                output = Output(process.stdout)
                nursery.start_soon(output.drain)
                url = (await output.wait_for_event("ready to serve"))["urls"][0]
                responses = await _requests(name, str(url))
                process.send_signal(signal.SIGTERM)
                assert await process.wait() == 0
    return output.text + await trio.Path(stderr_path).read_text(), responses


# every process parses every variable, so each refuses each bad value; ingest twice: its sync mode uses INTERNAL_TOKEN
PROCESSES = ["ingest", "ingest-http", "api", "workers"]


@pytest.mark.parametrize("name", PROCESSES)
async def test_no_secret_reaches_stderr_logs_probes_or_metrics(name: str, settings: Settings,
                                                               service_env: dict[str, str], tmp_path: Path) -> None:
    shard0 = service_env["DATABASE_URLS"].split(",")[0]
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"  # its check fails: that error is shown too
    good = {**service_env, **GOOD, PORT_VARIABLE[name.split("-")[0]]: "0",
            "DATABASE_URLS": f"{_with_password(shard0, 'AXOLOTL-db-2718')},{_with_password(dead, 'AXOLOTL%2Fx%40y')}"}
    if name == "ingest-http":
        good.update(WEBHOOK_MODE="http", API_BASE_URL=f"http://127.0.0.1:{free_port()}")

    for variable, raw, _ in BAD if name == "ingest" else BAD[::3]:  # ingest: every bad value; the others, a few
        code, text = await _bad_run(name.split("-")[0], {**good, variable: raw})
        assert code == 2 and text.startswith(f"configuration error: {variable} is invalid: expected "), text
        assert len(text.splitlines()) == 1 and leaks(text) == [], text

    if name == "ingest":  # its webhook is accepted: the key is in use
        names = [settings.topic(topic) for topic in ALL_TOPICS]
        await trio.to_thread.run_sync(create_topics, admin_client(settings.kafka_bootstrap_servers), names,
                                      settings.topic_partitions)
    text, responses = await _good_run(name, good, tmp_path / "stderr")
    bodies = [f"{response.status_code} {response.headers} {response.text}" for response in responses]
    assert leaks(text) == [] and [leaks(body) for body in bodies if leaks(body)] == []
    checks = responses[1].json()["checks"]
    if name in ("api", "workers"):  # the failing shard's error text is in /readyz, and was searched above
        assert checks["shard0"] == "ok" and checks["shard1"].startswith("DatabaseUnavailable"), checks
    if name == "ingest":
        assert responses[4].status_code == 202 and responses[5].status_code == 401, bodies


@pytest.mark.parametrize("mode", ["http", "grpc"])
async def test_sync_ingest_without_internal_token_exits_2_with_one_line(mode: str, service_env: dict[str, str]) -> None:
    env = {key: value for key, value in service_env.items() if key != "INTERNAL_TOKEN"}
    env.update(WEBHOOK_MODE=mode, INGEST_PORT="0", API_BASE_URL=f"http://127.0.0.1:{free_port()}",
               API_GRPC_TARGET=f"127.0.0.1:{free_port()}")
    code, text = await _bad_run("ingest", env)
    assert code == 2, text
    assert text.splitlines() == [f"configuration error: INTERNAL_TOKEN is required when WEBHOOK_MODE={mode}: "
                                 "ingest presents it to the api, which refuses every call without it "
                                 "(see README: Configuration)"]
