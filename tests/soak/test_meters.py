"""The soak's meters survive an ingest that answers its metrics scrape with an error page."""

from __future__ import annotations

import httpx

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
