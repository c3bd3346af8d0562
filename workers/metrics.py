"""Prometheus series of the workers process."""

from prometheus_client import Counter, Gauge, Histogram

OUTCOMES = Counter("worker_events_total", "Events processed, by topic and outcome", ["topic", "outcome"])
DEAD_LETTERS = Counter("worker_dead_letters_total", "Records sent to a DLQ, by topic and reason", ["topic", "reason"])
BATCH_SIZE = Histogram("worker_batch_size", "Records per applied batch", ["topic"],
                       buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000))
MAILBOX_DEPTH = Gauge("worker_mailbox_depth", "Records waiting in a partition actor's mailbox", ["topic", "partition"])
CONSUMER_LAG = Gauge("worker_consumer_lag", "High watermark minus the done (or committed) position",
                     ["topic", "partition"])
RETRY_LANE_DEPTH = Gauge("worker_retry_lane_events", "Events waiting in per-user retry lanes (order not known yet)",
                         ["topic", "partition"])
END_TO_END = Histogram("worker_end_to_end_seconds", "From ingest's received_at to the database commit", ["topic"],
                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
RETRIES = Counter("worker_transient_retries_total", "Batches retried because a dependency was down", ["topic"])
RESTARTS = Counter("worker_consumer_restarts_total", "Topic consumers restarted after a crash", ["topic"])
ASSIGNED = Gauge("worker_assigned_partitions", "Partitions this process owns, by topic", ["topic"])
PAUSED = Gauge("worker_paused_partitions", "Partitions paused for backpressure, by topic", ["topic"])
REBALANCES = Counter("worker_rebalances_total", "Partitions assigned, revoked or lost, by topic", ["topic", "kind"])
COMMIT_FAILURES = Counter("worker_commit_failures_total", "Offset commits the broker did not confirm", ["topic"])
STALLED = Gauge("worker_stalled_partitions",
                "Partitions needing attention: paused with an empty mailbox, or lagging with no progress", ["topic"])

_PER_PARTITION = (MAILBOX_DEPTH, CONSUMER_LAG, RETRY_LANE_DEPTH)


def forget_partition(topic: str, partition: int) -> None:
    """Drop a partition's series once it is no longer ours (its last values would mislead)."""
    for gauge in _PER_PARTITION:
        try:
            gauge.remove(topic, str(partition))
        except KeyError:
            pass
