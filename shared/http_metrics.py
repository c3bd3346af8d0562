"""Requests by route and status, with latency, for every service's HTTP server.

Routes are normalised (``/orders/{order_id}``) so ids never become label values.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("http_requests_total", "HTTP requests by route and status", ["route", "status"])
LATENCY = Histogram("http_request_seconds", "HTTP request latency by route", ["route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

_COLLECTIONS = {"orders": "/orders/{order_id}", "disputes": "/disputes/{dispute_id}", "schemas": "/schemas/{name}"}
KNOWN = {"/healthz", "/readyz", "/metrics", "/orders", "/openapi.json", "/webhooks/payments/orders",
         "/webhooks/payments/disputes", "/internal/updates/orders", "/internal/updates/disputes"}


def route_of(path: str) -> str:
    if path in KNOWN:
        return path
    parts = path.split("/")
    if len(parts) == 3 and parts[1] in _COLLECTIONS:
        return _COLLECTIONS[parts[1]]
    return "other"


class RequestMetrics:
    """Counts and times requests; the labelled series are looked up once per (route, status),
    since prometheus-client's ``labels()`` costs more than the observation on the hot path."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def observe(self, path: str, status: int, seconds: float) -> None:
        route = route_of(path)
        series = self._series.get((route, status))
        if series is None:
            series = self._series[(route, status)] = (REQUESTS.labels(route, str(status)), LATENCY.labels(route))
        series[0].inc()
        series[1].observe(seconds)
