"""The Kafka topics of SPEC §6 and the admin calls on them (blocking C: call from a thread).

Partitions are fixed at creation where the broker cannot add them (tansu lacks
CreatePartitions), so ``TOPIC_PARTITIONS`` decides how far workers can scale out.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewPartitions, NewTopic  # defined here; .admin imports them unexported

from shared.errors import BrokerUnavailable

ORDERS = "orders.webhooks"
DISPUTES = "disputes.webhooks"
DLQ_SUFFIX = ".DLQ"
ALL_TOPICS = (ORDERS, DISPUTES, ORDERS + DLQ_SUFFIX, DISPUTES + DLQ_SUFFIX)


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int


def admin_client(bootstrap_servers: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap_servers, "socket.timeout.ms": 5000})


def describe_topics(admin: AdminClient, names: list[str], timeout_seconds: float = 5.0) -> list[TopicState]:
    """The partition count of each named topic that exists."""
    try:
        metadata = admin.list_topics(timeout=timeout_seconds)
    except KafkaException as exc:
        raise BrokerUnavailable(f"broker unavailable: {exc}") from exc
    return [TopicState(name, len(metadata.topics[name].partitions)) for name in names if name in metadata.topics]


def create_topics(admin: AdminClient, names: list[str], partitions: int,
                  timeout_seconds: float = 10.0) -> dict[str, str]:
    """Create each topic with ``partitions`` partitions; existing topics are left alone."""
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names],
        operation_timeout=timeout_seconds,
        request_timeout=timeout_seconds,
    )
    outcome: dict[str, str] = {}
    for name, future in futures.items():
        try:
            future.result()
            outcome[name] = "created"
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BrokerUnavailable(f"cannot create topic {name}: {exc}") from exc
            outcome[name] = "exists"
    return outcome


def ping_broker(admin: AdminClient, timeout_seconds: float = 1.5) -> None:
    """Raise ``BrokerUnavailable`` unless the broker answers a metadata request."""
    describe_topics(admin, [], timeout_seconds)


def scale_topics(admin: AdminClient, names: list[str], partitions: int,
                 timeout_seconds: float = 10.0) -> dict[str, str]:
    """Raise each topic's partition count to ``partitions`` (Kafka's CreatePartitions, KIP-195).

    Users keep their shard (sharding ignores partitions); a user's new records may go
    to another partition than its old ones, so scale while the old ones are drained.
    """
    current = {state.name: state.partitions for state in describe_topics(admin, names)}
    wanted = [NewPartitions(name, partitions) for name in names if current.get(name, partitions) < partitions]
    outcome = {name: f"already {current[name]} partitions" for name in names if current.get(name, 0) >= partitions}
    if not wanted:
        return outcome
    futures = admin.create_partitions(wanted, operation_timeout=timeout_seconds, request_timeout=timeout_seconds)
    for name, future in futures.items():
        try:
            future.result()
            outcome[name] = f"scaled to {partitions} partitions"
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() in (KafkaError.UNSUPPORTED_VERSION, KafkaError._UNSUPPORTED_FEATURE,
                                KafkaError.INVALID_REQUEST, KafkaError.UNKNOWN):
                raise BrokerUnavailable(
                    f"the broker cannot add partitions to {name} ({error.str()}); tansu, the embedded broker, "
                    "lacks CreatePartitions: create topics with their final TOPIC_PARTITIONS instead") from exc
            raise BrokerUnavailable(f"cannot scale {name}: {error.str()}") from exc
    return outcome
