"""What the soak reads off the running system every 10 s: RSS and CPU of every process, and the
broker's acknowledgements as ingest timed them since the previous reading (kafka mode; http mode has no
broker: no metrics URL is given and every reading's ``ack_buckets`` is empty).

CPU is user + system time over the interval, as % of one core: on a 2-core machine shared by
everything, a process whose CPU climbs takes it from the others (the broker's did, see README).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import psutil

from webhooks.bench.stack import postgres_processes
from webhooks.soak import broker_acks


@dataclass(frozen=True)
class Reading:
    rss_mb: dict[str, float]
    cpu_percent: dict[str, float]
    ack_buckets: dict[float, float]


class Meters:
    def __init__(self, processes: Mapping[str, psutil.Process], pg_port: int, broker: psutil.Process | None,
                 ingest_metrics_url: str | None) -> None:
        self._processes = {**processes, **({"broker": broker} if broker is not None else {})}
        self._pg_port = pg_port
        self._metrics_url = ingest_metrics_url
        self._cpu_seconds = self._cpu_now()
        self._at = time.monotonic()
        self._acks: dict[float, float] = {}

    async def start(self, client: httpx.AsyncClient) -> None:
        """The baseline: what was acknowledged before the load is not the first interval's."""
        self._acks = await self._scrape(client)
        self._cpu_seconds, self._at = self._cpu_now(), time.monotonic()

    async def read(self, client: httpx.AsyncClient) -> Reading:
        acks = await self._scrape(client)
        cpu, at = self._cpu_now(), time.monotonic()
        elapsed = max(at - self._at, 1e-9)
        percent = {name: 100 * (seconds - self._cpu_seconds.get(name, seconds)) / elapsed
                   for name, seconds in cpu.items()}
        reading = Reading(self._rss_mb(), percent, broker_acks.interval(self._acks, acks))
        self._acks, self._cpu_seconds, self._at = acks, cpu, at
        return reading

    async def _scrape(self, client: httpx.AsyncClient) -> dict[float, float]:
        if self._metrics_url is None:
            return {}
        try:
            response = await client.get(self._metrics_url)
            if response.status_code == 200:
                return broker_acks.delivery_buckets(response.text)
        except (httpx.HTTPError, ValueError):  # ValueError: not Prometheus text
            pass
        return dict(self._acks)  # ingest busy, gone or erring: this interval shows no acks rather than a crash

    def _cpu_now(self) -> dict[str, float]:
        return {name: cpu_seconds(process) for name, process in self._processes.items()}

    def _rss_mb(self) -> dict[str, float]:
        """RSS per process; PostgreSQL's is summed over its processes (shared buffers counted in each)."""
        measured = {name: _rss(process) for name, process in self._processes.items()}
        measured["postgres"] = sum(_rss(process) for process in postgres_processes(self._pg_port))
        return measured


def _rss(process: psutil.Process) -> float:
    try:
        return float(process.memory_info().rss) / 2**20
    except psutil.NoSuchProcess:
        return 0.0


def cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


def broker_process(bootstrap: str) -> psutil.Process | None:
    """The embedded broker serving ``bootstrap`` (found by its listener argument)."""
    listener = f"tcp://{bootstrap}"
    for process in psutil.process_iter(["cmdline"]):
        if listener in (process.info["cmdline"] or []):
            return process
    return None
