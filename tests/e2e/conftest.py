"""One fixture for every mode: the whole system as ``webhooks dev --mode M`` runs it (the Procfile's processes).

Module-scoped and parametrized by mode, so each mode's stack starts once for the
e2e tests; its stdout (every process's JSON logs) goes to a file the tests can read.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from webhooks.embedded import free_port
from webhooks.sample import Sample

SECRET = b"e2e-secret-0123456789abcdef"
STRIPE_SECRET = "whsec_e2e-stripe-0123456789abcdef"  # Stripe keys with the literal text
API_TOKEN = "e2e-api-token"
MODES = ["kafka", "http", "grpc"]


@dataclass(frozen=True)
class Stack:
    mode: str
    ingest_url: str
    api_url: str
    workers_url: str | None
    log: Path

    @property
    def sample(self) -> Sample:
        return Sample(self.ingest_url, self.api_url, SECRET, API_TOKEN, STRIPE_SECRET)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for(condition, what: str, timeout: float = 60.0) -> None:  # noqa: ANN001
    """Poll ``condition()`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module", params=MODES)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    mode = request.param
    ports = {name: free_port() for name in ("INGEST_PORT", "API_PORT", "WORKERS_PORT", "API_GRPC_PORT")}
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URLS", "KAFKA_BOOTSTRAP_SERVERS")}
    env.update({name: str(port) for name, port in ports.items()},
               API_GRPC_TARGET=f"127.0.0.1:{ports['API_GRPC_PORT']}",
               API_BASE_URL=f"http://127.0.0.1:{ports['API_PORT']}",
               WEBHOOK_SECRETS="whsec_" + base64.b64encode(SECRET).decode(), API_TOKENS=API_TOKEN,
               STRIPE_WEBHOOK_SECRETS=STRIPE_SECRET,
               INTERNAL_TOKEN="e2e-internal-token", LOG_LEVEL="debug", SHUTDOWN_GRACE="5s", PYTHONUNBUFFERED="1")
    log = tmp_path_factory.mktemp(f"e2e-{mode}") / "stack.log"
    with open(log, "wb") as out, subprocess.Popen([sys.executable, "-m", "webhooks", "dev", "--mode", mode],
                                                   env=env, stdout=out, stderr=subprocess.STDOUT) as process:
        try:
            wait_for(lambda: "Press Ctrl-C to stop." in log.read_text(errors="replace") or process.poll() is not None,
                     f"`webhooks dev --mode {mode}` is ready", timeout=120)
            assert process.poll() is None, log.read_text(errors="replace")[-3000:]
            workers = f"http://127.0.0.1:{ports['WORKERS_PORT']}" if mode == "kafka" else None
            yield Stack(mode, f"http://127.0.0.1:{ports['INGEST_PORT']}", f"http://127.0.0.1:{ports['API_PORT']}",
                        workers, log)
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0
