"""``webhooks dev``: the whole stack comes up, and nothing outlives it."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest
import trio

from tests.processes import Output
from webhooks.connection_file import FILE_VARIABLE
from webhooks.embedded import free_port

BANNER_END = "Press Ctrl-C to stop."


def _dev_env(connection_file: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URLS", "KAFKA_BOOTSTRAP_SERVERS")}
    grpc_port = free_port()
    env.update(INGEST_PORT=str(free_port()), API_PORT=str(free_port()), WORKERS_PORT="0",  # the OS picks its port
               API_GRPC_PORT=str(grpc_port), API_GRPC_TARGET=f"127.0.0.1:{grpc_port}",
               SHUTDOWN_GRACE="5s", PYTHONUNBUFFERED="1")
    env[FILE_VARIABLE] = str(connection_file)
    return env


async def _command(argv: list[str], connection_file: Path) -> subprocess.CompletedProcess[bytes]:
    """A ``webhooks`` command in a shell that has nothing but the connection file's path."""
    env = {"PATH": os.environ["PATH"], FILE_VARIABLE: str(connection_file)}
    return await trio.run_process([sys.executable, "-m", "webhooks", *argv], env=env, check=False,
                                  capture_stdout=True, capture_stderr=True)


PROCESSES = {"kafka": ("ingest", "api", "workers"), "grpc": ("ingest", "api")}


def _banner_urls(text: str) -> dict[str, str]:
    """Each process's URL as the banner shows it: ``  name     http://host:port``."""
    banner = text[text.index("webhooks dev: ready"):]
    return dict(re.findall(r"^  (\w+) +(http://\S+)$", banner, re.MULTILINE))


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def _wait_gone(processes: list[psutil.Process]) -> None:
    """Wait (bounded by the caller's deadline) until none of ``processes`` is alive."""
    while any(_alive(process) for process in processes):
        await trio.sleep(0.1)


@pytest.mark.parametrize(("mode", "stop"), [("kafka", signal.SIGTERM), ("kafka", signal.SIGKILL),
                                            ("grpc", signal.SIGTERM)])
async def test_dev_runs_every_process_and_leaves_none_behind(mode: str, stop: signal.Signals,
                                                             tmp_path: Path) -> None:
    connection_file = tmp_path / "dev.json"
    env = _dev_env(connection_file)
    with trio.fail_after(120):
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "webhooks", "dev", "--mode", mode], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        output = Output(process.stdout)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(output.drain)
            await output.wait_for(BANNER_END)
            urls = _banner_urls(output.text)
            assert urls["ingest"] == f"http://127.0.0.1:{env['INGEST_PORT']}"
            assert urls["api"] == f"http://127.0.0.1:{env['API_PORT']}"
            async with httpx.AsyncClient() as client:
                for name in PROCESSES[mode]:  # the workers' URL too, though WORKERS_PORT=0
                    response = await client.get(f"{urls[name]}/readyz")
                    assert response.status_code == 200, response.text
            assert "WEBHOOK_SECRETS=whsec_" in output.text and "STRIPE_WEBHOOK_SECRETS=whsec_" in output.text
            assert stat.S_IMODE(connection_file.stat().st_mode) == 0o600
            if stop == signal.SIGTERM:  # "try it" needs no settings copied from the banner
                sample = await _command(["send-sample", "--users", "2"], connection_file)
                assert sample.returncode == 0, sample.stdout.decode() + sample.stderr.decode()
                assert "3 of 3 states match" in sample.stdout.decode()
                # Stripe too, with the dev-generated STRIPE_WEBHOOK_SECRETS from the connection file
                stripe = await _command(["send-sample", "--provider", "stripe", "--users", "2"], connection_file)
                assert stripe.returncode == 0, stripe.stdout.decode() + stripe.stderr.decode()
                assert "3 of 3 states match" in stripe.stdout.decode()
                assert "/webhooks/stripe" in stripe.stdout.decode()
            descendants = psutil.Process(process.pid).children(recursive=True)
            names = {child.name() for child in descendants}
            assert "postgres" in names
            if mode == "kafka":
                assert any("tansu" in name for name in names)
                assert len(descendants) >= 5  # postgres (+ its workers), tansu, api, ingest, workers

            process.send_signal(stop)
            code = await process.wait()
            await _wait_gone(descendants)
            nursery.cancel_scope.cancel()
    assert code == (0 if stop == signal.SIGTERM else -signal.SIGKILL)
    if stop == signal.SIGTERM:
        assert "webhooks dev: stopped" in output.text
        assert not connection_file.exists()
    else:  # left behind by a dev that was killed: ignored, and said so
        stale = await _command(["send-sample"], connection_file)
        assert stale.returncode == 2
        assert "is not running" in stale.stderr.decode()
