"""Prometheus series of the ingest process (module-level, as prometheus-client intends)."""

from prometheus_client import Counter, Gauge

BREAKER_STATE = Gauge("circuit_breaker_state", "1 for the breaker's current state", ["breaker", "state"])
BREAKER_TRANSITIONS = Counter("circuit_breaker_transitions_total", "Breaker state changes",
                              ["breaker", "from_state", "to_state"])
API_CALLS = Counter("ingest_api_calls_total", "Attempts of ingest → api calls by result", ["result"])
