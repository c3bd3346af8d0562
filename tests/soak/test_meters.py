"""The soak's meters survive an ingest that answers its metrics scrape with an error page, and scrape
nothing in http mode (no broker, no acknowledgements)."""

from __future__ import annotations

import httpx
import psutil

from webhooks.soak.meters import Meters

METRICS = ("# TYPE kafka_delivery_seconds histogram\n"
           'kafka_delivery_seconds_bucket{topic="o",le="0.01"} 3.0\n'
           'kafka_delivery_seconds_bucket{topic="o",le="+Inf"} 4.0\n')


async def test_an_error_page_counts_as_no_acks_rather_than_ending_the_soak() -> None:
    answers = iter([httpx.Response(200, text=METRICS), httpx.Response(500, text="<html>500</html>"),
                    httpx.Response(200, text="not prometheus {")])
    transport = httpx.MockTransport(lambda request: next(answers))
    meters = Meters({}, pg_port=1, broker=None, ingest_metrics_url="http://ingest/metrics")
    async with httpx.AsyncClient(transport=transport) as client:
        await meters.start(client)
        assert (await meters.read(client)).ack_buckets == {0.01: 0.0, float("inf"): 0.0}
        assert (await meters.read(client)).ack_buckets == {0.01: 0.0, float("inf"): 0.0}


async def test_without_a_metrics_url_nothing_is_scraped_and_no_acks_are_read() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"scraped {request.url}")

    meters = Meters({"ingest": psutil.Process()}, pg_port=1, broker=None, ingest_metrics_url=None)
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        await meters.start(client)
        reading = await meters.read(client)
    assert reading.ack_buckets == {}
    assert set(reading.rss_mb) == {"ingest", "postgres"} and reading.rss_mb["ingest"] > 0
    assert set(reading.cpu_percent) == {"ingest"}
