"""The soak's progress line: the broker's acknowledgements only where there is a broker."""

from __future__ import annotations

from webhooks.soak.runner import _progress_line
from webhooks.soak.samples import Sample


def test_the_progress_line_names_broker_acks_only_in_kafka_mode() -> None:
    sample = Sample(70.0, {"ingest": 80.4, "api": 70.0}, (12.0,) * 10, 1000, 0)
    assert _progress_line(sample, 10, acks=True) == \
        "soak 1:10/10:00  RSS MB: ingest 80  api 70  p99 12 ms (broker acks –)  100/s"
    assert _progress_line(sample, 10, acks=False) == "soak 1:10/10:00  RSS MB: ingest 80  api 70  p99 12 ms  100/s"
