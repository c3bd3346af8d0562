"""The chaos provider's load is open-loop: chains keep starting while ingest is down, each still sent in order."""

from __future__ import annotations

import datetime as dt
import time

import httpx
import trio

from webhooks.chaos.audit import CIRCUIT_OPEN_TYPE, Facts, audit
from webhooks.chaos.load import LoadShape, Provider
from webhooks.chaos.plan import chains

OUTAGE = (1.0, 2.5)  # seconds after the load started


async def test_chains_keep_starting_during_an_outage_and_each_goes_out_in_order() -> None:
    began = time.time()
    in_use = 0
    most_in_use = 0

    async def ingest(request: httpx.Request) -> httpx.Response:
        nonlocal in_use, most_in_use
        in_use += 1
        most_in_use = max(most_in_use, in_use)
        try:
            await trio.sleep(0.002)
            if OUTAGE[0] <= time.time() - began < OUTAGE[1]:
                return httpx.Response(503, headers={"retry-after": "1"}, json={"type": CIRCUIT_OPEN_TYPE})
            return httpx.Response(202)
        finally:
            in_use -= 1

    planned = chains("load", 200, 50, dt.datetime.now(dt.UTC))
    shape = LoadShape(rate_per_second=100, clients=4, resend_fraction=0.0)
    provider = Provider("http://ingest", b"secret-0123456789", shape, transport=httpx.MockTransport(ingest))
    await provider.run(planned, load_seconds=4.0, drain_seconds=10.0)

    assert most_in_use <= shape.clients  # one request per client at a time, never more
    assert provider.skipped_starts == 0 and not provider.chains_ran_out
    events = [e for c in planned for e in c.events]
    window = (began + OUTAGE[0], began + OUTAGE[1])
    facts = Facts(events, provider.attempts, [], {}, fault_windows=[window], load_window=(began, began + 4.0))
    offered = audit(facts).offered
    assert offered is not None and offered.chain_starts_in_faults and offered.chain_starts_outside
    expected = 100 / (sum(len(c.events) for c in planned) / len(planned))  # chains a second
    assert abs(offered.chain_starts_in_faults - expected) < 0.2 * expected, offered
    assert abs(offered.chain_starts_outside - expected) < 0.2 * expected, offered
    healthy = audit(Facts(events, provider.attempts, [], {}, load_window=(began, began + OUTAGE[0]))).offered
    assert healthy and healthy.first_attempts_outside and abs(healthy.first_attempts_outside - 100) < 25, healthy
    # every started chain finished (2xx for each event), its events first sent in chain order
    first_sent: dict[str, float] = {}
    for attempt in provider.attempts:
        first_sent.setdefault(attempt.provider_event_id, attempt.started_at)
    started = [c for c in planned if c.events[0].provider_event_id in first_sent]
    assert len(started) == provider.chains_started
    for c in started:
        assert all(e.provider_event_id in provider.acknowledged for e in c.events)
        times = [first_sent[e.provider_event_id] for e in c.events]
        assert times == sorted(times)


async def test_a_retry_waits_out_retry_after_and_without_one_backs_off_within_the_cap(autojump_clock: object) -> None:
    sent: dict[str, list[float]] = {}

    async def ingest(request: httpx.Request) -> httpx.Response:
        event_id = request.headers["webhook-id"]
        times = sent.setdefault(event_id, [])
        times.append(trio.current_time())
        if len(times) == 1:  # first attempt: circuit open, come back in 3 s
            return httpx.Response(503, headers={"retry-after": "3"}, json={"type": CIRCUIT_OPEN_TYPE})
        if len(times) == 2:  # second: a 503 with no Retry-After (or a useless one)
            return httpx.Response(503, headers={"retry-after": "soon"})
        return httpx.Response(202)

    planned = chains("after", 20, 5, dt.datetime.now(dt.UTC))[:3]
    shape = LoadShape(rate_per_second=100, clients=4, resend_fraction=0.0)
    provider = Provider("http://ingest", b"secret-0123456789", shape, transport=httpx.MockTransport(ingest))
    await provider.run(planned, load_seconds=0.2, drain_seconds=600.0)

    assert sent and all(len(times) == 3 for times in sent.values())
    for first, second, third in sent.values():
        assert 3.0 <= second - first <= 4.5  # Retry-After × 1–1.5
        assert 0.05 <= third - second <= 2.0  # backoff alone, capped
