"""The provider: signed webhooks at a steady rate, each order's chain strictly in order, retried until 2xx.

A chain's next event goes out only after the previous one was answered 2xx, so the order
the shards should show is defined. Every first attempt takes a ticket from a steady ticker
(the offered rate); retries do not: they are paced by exponential backoff capped at 2 s, with
full jitter (a ``Retry-After`` longer than the cap is not waited out: the provider is eager). A
non-2xx answer other than 4xx, or no answer, is retried until 2xx or the drain deadline; a 4xx
ends the chain (a provider gives up on it). A fraction of
events is sent once more after its 2xx — a provider duplicate with the same ``webhook-id``.
Every attempt is recorded (wall-clock times, so the audit can compare them with the rows'
``stored_at``).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import trio

from ingest.signatures import sign
from webhooks.chaos.audit import Attempt
from webhooks.chaos.plan import Chain, PlannedEvent

RETRY_CAP_SECONDS = 2.0
REQUEST_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class LoadShape:
    rate_per_second: float = 120.0
    concurrency: int = 48
    resend_fraction: float = 0.05


class Provider:
    """Sends the chains; ``attempts`` and ``ok_answers`` grow as it goes (the sampler reads them)."""

    def __init__(self, ingest_url: str, secret: bytes, shape: LoadShape, seed: int = 1) -> None:
        self.ingest_url, self.secret, self.shape = ingest_url, secret, shape
        self.attempts: list[Attempt] = []
        self.ok_answers = 0
        self.acknowledged: set[str] = set()  # events answered 2xx at least once
        self._rng = random.Random(seed)

    async def run(self, chains: Sequence[Chain], load_seconds: float, drain_seconds: float) -> None:
        """Start chains for ``load_seconds``; then finish the started ones within ``drain_seconds`` more."""
        now = trio.current_time()
        load_end, drain_end = now + load_seconds, now + load_seconds + drain_seconds
        send_chains, receive_chains = trio.open_memory_channel[Chain](0)
        send_tickets, receive_tickets = trio.open_memory_channel[None](0)
        with trio.move_on_after(load_seconds + drain_seconds):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._tick, send_tickets, load_end)
                for _ in range(self.shape.concurrency):
                    nursery.start_soon(self._send_chains, receive_chains.clone(), receive_tickets.clone(), drain_end)
                receive_chains.close()
                receive_tickets.close()
                async with send_chains:
                    for one in chains:
                        if trio.current_time() >= load_end:
                            break
                        await send_chains.send(one)

    async def _tick(self, tickets: trio.MemorySendChannel[None], until: float) -> None:
        interval = 1.0 / self.shape.rate_per_second
        async with tickets:
            next_at = trio.current_time()
            while next_at < until:
                await trio.sleep_until(next_at)
                with trio.move_on_after(interval):  # nobody free to send: that ticket is not owed later
                    try:
                        await tickets.send(None)
                    except trio.BrokenResourceError:
                        return  # every chain is done
                next_at += interval

    async def _send_chains(self, chains: trio.MemoryReceiveChannel[Chain],
                           tickets: trio.MemoryReceiveChannel[None], drain_end: float) -> None:
        """One sender: its own client of one connection. (Senders sharing one pool race for its first
        idle connection when they start together — httpcore 1.0.9, encode/httpcore#822 — and the
        losers go round the pool again: 10–28 ms measured on answers ingest gave in 3 ms.)"""
        async with chains, tickets, httpx.AsyncClient(timeout=REQUEST_TIMEOUT_SECONDS,
                                                      limits=httpx.Limits(max_connections=1)) as client:
            async for one in chains:
                for event in one.events:
                    try:
                        await tickets.receive()
                    except trio.EndOfChannel:
                        pass  # the load window is over: finish this chain unpaced
                    if not await self._deliver(client, event, drain_end):
                        break

    async def _deliver(self, client: httpx.AsyncClient, event: PlannedEvent, drain_end: float) -> bool:
        """Until 2xx (True), a 4xx or the drain deadline (False)."""
        failures = 0
        while True:
            attempt = await self._post(client, event)
            if attempt.ok:
                if self._rng.random() < self.shape.resend_fraction:
                    await self._post(client, event, resend=True)
                return True
            if attempt.status is not None and 400 <= attempt.status < 500:
                return False
            failures += 1
            # full jitter: the chains that failed together must not all come back together
            delay = self._rng.uniform(0.05, min(RETRY_CAP_SECONDS, 0.1 * 2 ** failures))
            if trio.current_time() + delay >= drain_end:
                return False
            await trio.sleep(delay)

    async def _post(self, client: httpx.AsyncClient, event: PlannedEvent, *, resend: bool = False) -> Attempt:
        body = json.dumps(event.payload).encode()
        webhook_id, timestamp = f"msg_{event.provider_event_id}", int(time.time())
        headers = {"content-type": "application/json", "webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
                   "webhook-signature": sign(self.secret, webhook_id, timestamp, body)}
        started = time.time()
        try:
            response = await client.post(f"{self.ingest_url}/webhooks/payments/{event.kind}", content=body,
                                         headers=headers)
        except httpx.TransportError:
            attempt = Attempt(event.provider_event_id, started, time.time(), None, resend=resend)
        else:
            attempt = Attempt(event.provider_event_id, started, time.time(), response.status_code,
                              retry_after="retry-after" in response.headers,
                              problem_type=_problem_type(response), resend=resend)
        self.attempts.append(attempt)
        if attempt.ok:
            self.ok_answers += 1
            self.acknowledged.add(event.provider_event_id)
        return attempt


def _problem_type(response: httpx.Response) -> str | None:
    if response.status_code < 400 or "json" not in response.headers.get("content-type", ""):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("type") if isinstance(body, dict) else None
