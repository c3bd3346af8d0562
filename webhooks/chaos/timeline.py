"""One sample a second while a chaos run goes on: 2xx answers, events not yet stored, lag, breaker state.

``pending`` is events the provider was told were accepted minus event rows in the shards
(kafka mode: the backlog the workers owe; sync modes: about zero), ``None`` while the
database cannot be asked. The breaker state comes from ingest's ``/metrics`` (sync modes),
the consumer lag from every worker's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import httpx
import trio
import trio_asyncio

from webhooks.chaos.load import Provider
from webhooks.chaos.system import System

BREAKER_LEVEL = {"closed": 0.0, "half_open": 0.5, "open": 1.0}


@dataclass(frozen=True)
class Sample:
    at: float  # wall clock
    ok_answers: int  # cumulative
    pending: int | None
    lag: float | None
    breaker: float | None  # 0 closed, 0.5 half-open, 1 open


async def _stored(urls: Sequence[str]) -> int:
    total = 0
    for url in urls:
        conn = await asyncpg.connect(url, timeout=1.0, command_timeout=1.0)
        try:
            total += await conn.fetchval("SELECT (SELECT count(*) FROM order_events) + "
                                         "(SELECT count(*) FROM dispute_events)")
        finally:
            await conn.close()
    return total


async def stored_count(loop: trio_asyncio.TrioEventLoop, urls: Sequence[str]) -> int | None:
    """The event rows of every shard, or None when a shard does not answer within asyncpg's own timeouts
    (not a trio cancellation: one that lands inside asyncpg's connect leaves it a lost connection to report)."""
    try:
        return int(await loop.run_aio_coroutine(_stored(urls)))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return None


def metric_sum(text: str, name: str, label: str = "") -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and label in line)


def breaker_level(text: str) -> float | None:
    for state, level in BREAKER_LEVEL.items():
        if metric_sum(text, "circuit_breaker_state", f'state="{state}"') >= 1:
            return level
    return None


class Timeline:
    def __init__(self, provider: Provider, system: System, loop: trio_asyncio.TrioEventLoop,
                 urls: Sequence[str]) -> None:
        self.provider, self.system, self.loop, self.urls = provider, system, loop, urls
        self.samples: list[Sample] = []

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=0.5) as client:
            while True:
                deadline = trio.current_time() + 1.0
                self.samples.append(await self._sample(client))
                await trio.sleep_until(deadline)

    async def _sample(self, client: httpx.AsyncClient) -> Sample:
        stored = await stored_count(self.loop, self.urls)
        acknowledged = len(self.provider.acknowledged)  # after the count: rows of later answers are not pending
        breaker = lag = None
        if self.system.mode != "kafka":
            breaker = breaker_level(await _metrics(client, self.system.url("ingest")))
        else:
            texts = [await _metrics(client, self.system.url(name)) for name in self.system.alive("workers")]
            lag = sum(metric_sum(text, "worker_consumer_lag") for text in texts)
        return Sample(time.time(), self.provider.ok_answers, None if stored is None else acknowledged - stored,
                      lag, breaker)


async def _metrics(client: httpx.AsyncClient, url: str) -> str:
    try:
        return (await client.get(url + "/metrics")).text
    except httpx.TransportError:
        return ""
