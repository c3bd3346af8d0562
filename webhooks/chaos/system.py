"""The processes of one mode, as its Procfile runs them, that the faults kill, stop and restart.

Each process is a task of the system's nursery: started (``python -m …`` with the Procfile
line's environment), waited for until it answers its probe, and watched until it exits — by
itself, by a kill -9 or by a SIGTERM from a fault. Ports are fixed per run, so a restarted
api is found where ingest expects it. Every process's output goes to a log file of the run.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from shared.service import PORT_VARIABLE
from shared.settings import Mode
from webhooks.child_process import ChildProcess, open_child
from webhooks.devstack import wait_ready
from webhooks.embedded import free_port
from webhooks.procfile import ProcessSpec, load_procfile


@dataclass
class Running:
    process: ChildProcess
    url: str
    exited: trio.Event = field(default_factory=trio.Event)


class System:
    """The mode's processes by name (``api``, ``ingest``, ``workers-1`` …)."""

    def __init__(self, mode: Mode, env: Mapping[str, str], log_dir: Path, nursery: trio.Nursery) -> None:
        self.mode, self.env, self.log_dir, self._nursery = mode, dict(env), log_dir, nursery
        self.specs = {spec.name: spec for spec in load_procfile(mode)}
        self.ports: dict[str, int] = {}
        self.running: dict[str, Running] = {}
        self.exits: dict[str, list[int]] = {}
        self.crashes: list[str] = []  # exits no fault asked for: findings
        self._stopping: set[str] = set()

    async def start(self, name: str) -> None:
        """Start ``name`` (``workers-N`` is one more worker process) and wait until it serves."""
        await self._nursery.start(self._run, name)

    def terminate(self, name: str) -> None:
        self._stopping.add(name)
        self.running[name].process.send_signal(signal.SIGTERM)

    async def kill(self, name: str) -> None:
        """kill -9, and wait until it is gone."""
        running = self.running[name]
        self._stopping.add(name)
        running.process.kill()
        await running.exited.wait()

    def url(self, name: str) -> str:
        return self.running[name].url

    def alive(self, prefix: str) -> list[str]:
        return [name for name, r in self.running.items() if name.startswith(prefix) and not r.exited.is_set()]

    async def _run(self, name: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        spec = self.specs[name.split("-")[0]]
        port = self.ports.setdefault(name, free_port())
        env = {**self.env, **spec.env, PORT_VARIABLE[spec.name]: str(port)}
        with open(self.log_dir / f"{name}.log", "ab") as log:  # noqa: ASYNC230 - a local file opens at once
            async with open_child(spec.argv, env=env, stdout=log.fileno(), stderr=subprocess.STDOUT,
                                  grace_seconds=15.0) as process:
                running = Running(process, f"http://127.0.0.1:{port}")
                self.running[name] = running
                self._stopping.discard(name)
                try:
                    await wait_ready(running.url + _probe(spec), process)
                    task_status.started()
                    code = await process.wait()
                    self.exits.setdefault(name, []).append(code)
                    if name not in self._stopping or (code not in (0, -signal.SIGKILL)):
                        self.crashes.append(f"{name} exited with status {code}")
                finally:
                    running.exited.set()


def _probe(spec: ProcessSpec) -> str:
    # a worker is ready once its group settles, which a storm may delay: alive is enough to go on
    return "/healthz" if spec.name == "workers" else "/readyz"


@asynccontextmanager
async def open_system(mode: Mode, env: Mapping[str, str], api_port: int, log_dir: Path,
                      workers: int) -> AsyncIterator[System]:
    """api (on ``api_port``), then ingest (and ``workers`` worker processes in kafka mode), all serving;
    stopped on exit. ``env`` says where ingest finds the api (``API_BASE_URL``, ``API_GRPC_TARGET``)."""
    log_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a local directory, made at once
    async with trio.open_nursery() as nursery:
        system = System(mode, env, log_dir, nursery)
        system.ports["api"] = api_port
        await system.start("api")
        await system.start("ingest")
        if mode == "kafka":
            async with trio.open_nursery() as starting:
                for index in range(1, workers + 1):
                    starting.start_soon(system.start, f"workers-{index}")
        yield system
        nursery.cancel_scope.cancel()
