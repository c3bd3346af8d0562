"""The provider: signed webhooks under an open-loop load, each order's chain strictly in order, retried until 2xx.

Open loop: a steady ticker starts a new chain on every tick, whatever became of the chains
before it — a provider's customers keep paying while its webhook endpoint is down. The ticks
come at ``rate_per_second / L`` (L: the mean events per chain, 3.5), so a healthy system gets
about ``rate_per_second`` first attempts a second. A chain's next event goes out only after the
previous one was answered 2xx (right after it: the order the shards should show is defined),
so during a fault the started chains wait on their retries while new ones keep arriving; the
only bound is ``max_chains`` in flight (a tick that finds that many is dropped and counted in
``skipped_starts``). Retries are paced by exponential backoff capped at 2 s, with full jitter,
and an answer's ``Retry-After`` is honoured (waited out, times 1–1.5 so the chains told the same
time do not all come back at once), as providers do — real ones wait far longer (Svix: 5 s, then
5 min; Stripe: hours). Ignoring it was tried: ~1,000 chains retrying within 2 s kept all 96
clients busy against ingest, so every circuit-open answer queued behind ~95 others (the
fail-fast probe's p99 ≈ 96 × ingest's CPU per answer: 161–318 ms on a slow day) — a measure of
a closed-loop flood, not of the breaker. A non-2xx
answer other than 4xx, or no answer, is retried until 2xx or the drain deadline; a 4xx ends
the chain (a provider gives up on it). A fraction of events is sent once more after its 2xx —
a provider duplicate with the same ``webhook-id``. Every attempt is recorded (wall-clock
times, so the audit can compare them with the rows' ``stored_at``).

Every request takes one client of one connection from a pool of ``clients`` and gives it back
after its answer, so no two requests ever share an httpx pool (requests sharing one race for
its first idle connection — httpcore 1.0.9, encode/httpcore#822 — and the losers go round the
pool again: 10–28 ms measured on answers ingest gave in 3 ms). An attempt's clock starts once
it holds a client. The clients bound the requests in flight: while ingest holds its answers
(a frozen broker: ~5 s each, its delivery timeout) they bound the chain starts too. Opening
more clients on demand was tried: during the database outage ~1,400 retrying chains then
hit ingest at once and its circuit-open answers took up to 14 s (p99).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
import trio

from ingest.signatures import signed_headers
from webhooks.chaos.audit import Attempt, read_problem
from webhooks.chaos.plan import Chain, PlannedEvent

RETRY_CAP_SECONDS = 2.0
RETRY_AFTER_CAP_SECONDS = 60.0
REQUEST_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class LoadShape:
    rate_per_second: float = 120.0  # first attempts a second while every chain gets 2xx at once
    clients: int = 96  # one-connection clients, each serving one request at a time
    max_chains: int = 2000  # chains in flight at most; a start beyond is dropped and counted
    resend_fraction: float = 0.05


class _Pool:
    """Clients of one connection each, lent to one request at a time."""

    def __init__(self, give: trio.MemorySendChannel[httpx.AsyncClient],
                 take: trio.MemoryReceiveChannel[httpx.AsyncClient]) -> None:
        self._give, self._take = give, take

    @asynccontextmanager
    async def client(self) -> AsyncIterator[httpx.AsyncClient]:
        client = await self._take.receive()
        try:
            yield client
        finally:
            self._give.send_nowait(client)


class Provider:
    """Sends the chains; ``attempts`` and ``ok_answers`` grow as it goes (the sampler reads them)."""

    def __init__(self, ingest_url: str, secret: bytes, shape: LoadShape, seed: int = 1,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.ingest_url, self.secret, self.shape = ingest_url, secret, shape
        self.attempts: list[Attempt] = []
        self.ok_answers = 0
        self.acknowledged: set[str] = set()  # events answered 2xx at least once
        self.chains_started = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.skipped_starts = 0  # ticks that found ``max_chains`` in flight
        self.chains_ran_out = False  # the load window outlasted the planned chains
        self._transport = transport  # tests: a fake ingest
        self._rng = random.Random(seed)

    async def run(self, chains: Sequence[Chain], load_seconds: float, drain_seconds: float) -> None:
        """Start chains for ``load_seconds``; then finish the started ones within ``drain_seconds`` more."""
        now = trio.current_time()
        load_end, drain_end = now + load_seconds, now + load_seconds + drain_seconds
        mean_events = sum(len(c.events) for c in chains) / max(len(chains), 1)
        interval = mean_events / self.shape.rate_per_second
        with trio.move_on_after(load_seconds + drain_seconds):
            async with self._clients() as clients, trio.open_nursery() as nursery:
                pending = iter(chains)
                next_at = now
                while next_at < load_end:
                    await trio.sleep_until(next_at)
                    next_at += interval
                    if self.in_flight >= self.shape.max_chains:
                        self.skipped_starts += 1
                        continue
                    one = next(pending, None)
                    if one is None:
                        self.chains_ran_out = True
                        break
                    self.in_flight += 1
                    self.chains_started += 1
                    self.most_in_flight = max(self.most_in_flight, self.in_flight)
                    nursery.start_soon(self._send_chain, clients, one, drain_end)

    @asynccontextmanager
    async def _clients(self) -> AsyncIterator[_Pool]:
        give, take = trio.open_memory_channel[httpx.AsyncClient](self.shape.clients)
        async with AsyncExitStack() as stack:
            for _ in range(self.shape.clients):
                give.send_nowait(await stack.enter_async_context(httpx.AsyncClient(
                    timeout=REQUEST_TIMEOUT_SECONDS, limits=httpx.Limits(max_connections=1),
                    transport=self._transport)))
            yield _Pool(give, take)

    async def _send_chain(self, clients: _Pool,
                          one: Chain, drain_end: float) -> None:
        try:
            for event in one.events:
                if not await self._deliver(clients, event, drain_end):
                    break
        finally:
            self.in_flight -= 1

    async def _deliver(self, clients: _Pool,
                       event: PlannedEvent, drain_end: float) -> bool:
        """Until 2xx (True), a 4xx or the drain deadline (False)."""
        failures = 0
        while True:
            attempt, retry_after = await self._post(clients, event)
            if attempt.ok:
                if self._rng.random() < self.shape.resend_fraction:
                    await self._post(clients, event, resend=True)
                return True
            if attempt.status is not None and 400 <= attempt.status < 500:
                return False
            failures += 1
            # full jitter: the chains that failed together must not all come back together
            delay = max(self._rng.uniform(0.05, min(RETRY_CAP_SECONDS, 0.1 * 2 ** failures)),
                        retry_after * self._rng.uniform(1.0, 1.5))
            if trio.current_time() + delay >= drain_end:
                return False
            await trio.sleep(delay)

    async def _post(self, clients: _Pool,
                    event: PlannedEvent, *, resend: bool = False) -> tuple[Attempt, float]:
        """The attempt, and the seconds its answer's ``Retry-After`` asked for (0 if none)."""
        async with clients.client() as client:
            attempt, retry_after = await self._post_with(client, event, resend)
        self.attempts.append(attempt)
        if attempt.ok:
            self.ok_answers += 1
            self.acknowledged.add(event.provider_event_id)
        return attempt, retry_after

    async def _post_with(self, client: httpx.AsyncClient, event: PlannedEvent,
                         resend: bool) -> tuple[Attempt, float]:
        body = json.dumps(event.payload).encode()
        headers = signed_headers(self.secret, f"msg_{event.provider_event_id}", body)
        started = time.time()
        try:
            response = await client.post(f"{self.ingest_url}/webhooks/payments/{event.kind}", content=body,
                                         headers=headers)
        except httpx.TransportError:
            return Attempt(event.provider_event_id, started, time.time(), None, resend=resend), 0.0
        kind, api_called = read_problem(response.status_code, response.headers.get("content-type", ""),
                                        response.content)
        return (Attempt(event.provider_event_id, started, time.time(), response.status_code,
                        retry_after="retry-after" in response.headers, problem_type=kind, resend=resend,
                        api_called=api_called),
                _retry_after_seconds(response))


def _retry_after_seconds(response: httpx.Response) -> float:
    """Delay-seconds only (ingest never sends an HTTP date; anything else counts as none), waited
    out up to a minute: the run's drain could not outlast a longer one anyway."""
    value = response.headers.get("retry-after", "")
    if not value.isascii() or not value.isdigit():
        return 0.0
    return min(float(int(value)), RETRY_AFTER_CAP_SECONDS)
