"""Running the real service processes from tests, as the Procfile would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import httpx
import trio

from shared.service import PORT_VARIABLE
from webhooks.child_process import ChildProcess, open_child
from webhooks.devstack import wait_ready
from webhooks.embedded import free_port


@dataclass
class Service:
    process: ChildProcess
    url: str


@asynccontextmanager
async def running_service(name: str, env: Mapping[str, str], *, wait: bool = True) -> AsyncIterator[Service]:
    """``python -m <name>`` on a free port; waits until ``/readyz`` answers 200 unless told not to."""
    port = free_port()
    env = {**env, PORT_VARIABLE[name]: str(port)}
    async with open_child([sys.executable, "-m", name], env=env) as process:
        service = Service(process, f"http://127.0.0.1:{port}")
        if wait:
            await wait_ready(service.url + "/readyz", process)
        else:
            await wait_ready(service.url + "/healthz", process)
        yield service


class Output:
    """Collects a child's stdout in the background so tests can wait for a line."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.text = ""
        self._changed = trio.Event()

    async def drain(self) -> None:
        async for chunk in self.stream:
            self.text += chunk.decode(errors="replace")
            self._changed.set()
            self._changed = trio.Event()

    async def wait_for(self, needle: str) -> None:
        while needle not in self.text:
            await self._changed.wait()

    async def wait_for_event(self, event: str) -> dict[str, object]:
        """The first complete JSON log line whose ``event`` is ``event``."""
        while (found := self._event(event)) is None:
            await self._changed.wait()
        return found

    def _event(self, event: str) -> dict[str, object] | None:
        complete_lines = self.text[:self.text.rfind("\n") + 1].splitlines()
        records = (json.loads(line) for line in complete_lines if line.startswith("{"))
        return next((record for record in records if record.get("event") == event), None)


@asynccontextmanager
async def logged_service(name: str, env: Mapping[str, str]) -> AsyncIterator[tuple[ChildProcess, Output]]:
    """``python -m <name>`` as configured by ``env``, its stdout collected (until it exits) for its log lines."""
    async with trio.open_nursery() as nursery:
        async with open_child([sys.executable, "-m", name], env=env, stdout=subprocess.PIPE) as process:
            output = Output(process.stdout)
            nursery.start_soon(output.drain)
            yield process, output


@contextmanager
def sync_service(name: str, env: Mapping[str, str], deadline_seconds: float = 30.0) -> Iterator[str]:
    """``python -m <name>`` for a synchronous (module-scoped) fixture; yields its base URL once ready."""
    port = free_port()
    full_env = {**os.environ, **env, PORT_VARIABLE[name]: str(port)}
    url = f"http://127.0.0.1:{port}"
    with subprocess.Popen([sys.executable, "-m", name], env=full_env, stdout=subprocess.DEVNULL) as process:
        try:
            deadline = time.monotonic() + deadline_seconds
            while not _ready(url):
                assert time.monotonic() < deadline and process.poll() is None, f"{name} did not become ready"
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=15)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz").status_code == 200
    except httpx.TransportError:
        return False
