"""Prometheus series of the ingest process (module-level, as prometheus-client intends)."""

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("ingest_requests_total", "Webhook requests by route and status", ["route", "status"])
LATENCY = Histogram("ingest_request_seconds", "Webhook request latency", ["route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
BREAKER_STATE = Gauge("circuit_breaker_state", "1 for the breaker's current state", ["breaker", "state"])
BREAKER_TRANSITIONS = Counter("circuit_breaker_transitions_total", "Breaker state changes",
                              ["breaker", "from_state", "to_state"])
API_CALLS = Counter("ingest_api_calls_total", "Attempts of ingest → api calls by result", ["result"])
