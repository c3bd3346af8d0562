"""Prometheus series of the ingest process (module-level, as prometheus-client intends)."""

from prometheus_client import Counter, Gauge, Histogram

BREAKER_STATE = Gauge("circuit_breaker_state", "1 for the breaker's current state", ["breaker", "state"])
BREAKER_TRANSITIONS = Counter("circuit_breaker_transitions_total", "Breaker state changes",
                              ["breaker", "from_state", "to_state"])
API_CALLS = Counter("ingest_api_calls_total", "Attempts of ingest → api calls by result", ["result"])
API_BATCH_SIZE = Histogram("ingest_api_batch_size", "Updates per ingest → api batch call attempt",
                           buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
PROVIDER_EVENTS_IGNORED = Counter("ingest_provider_events_ignored_total",
                                  "Verified provider events answered 200 ignored, by type", ["provider", "event_type"])
