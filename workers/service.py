"""The workers process: one supervised consumer per topic, the DLQ producer, and the probes.

Shutdown: SIGTERM sets ``shutdown``; the consumers stop polling, their actors drain,
done prefixes are committed and the group is left — deadlines derived from
``SHUTDOWN_GRACE`` so all of it fits inside it; the DLQ producer, owned one level
up, outlives them and flushes last. ``/readyz`` reports the consumers' alerts
(a partition paused with an empty mailbox, or lagging with no progress).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial

import trio
import trio_asyncio

from shared.broker_probe import broker_check, producer_check
from shared.database import Database, open_database
from shared.http_server import serve_http
from shared.kafka_producer import KafkaProducer
from shared.logs import get_logger
from shared.messages import DisputeWebhook, LinkedOrderWebhook
from shared.probes import Check, probes_app
from shared.retry_policy import JitteredBackoff, patiently
from shared.settings import Settings
from shared.topics import DISPUTES, ORDERS
from workers.batch_writer import ShardedBatchWriter, WriterConfig
from workers.consumer_client import ConfluentConsumer, ConsumerConfig
from workers.metrics import RESTARTS
from workers.offset_tracker import OffsetTracker
from workers.partition_actor import PartitionActor
from workers.records import DeadLetter, Record
from workers.retry_lanes import LanePolicy
from workers.topic_consumer import ConsumerTimings, TopicConsumer

REQUIRED = ("database_urls",)
RESTART_WINDOW_SECONDS = 60.0
RESTART_DELAY_SECONDS = 1.0
SCHEMAS = {ORDERS: LinkedOrderWebhook, DISPUTES: DisputeWebhook}  # Linked: a provider's payment id, if any
log = get_logger(__name__)


class TooManyRestarts(RuntimeError):
    pass


def dead_letter_sender(producer: KafkaProducer, writer: ShardedBatchWriter) -> Callable[[DeadLetter], Awaitable[None]]:
    backoff = JitteredBackoff(0.1, 5.0, rng=random.Random())

    async def send(letter: DeadLetter) -> None:  # retried while the broker is down: never lost
        await patiently(producer.produce, letter.topic, letter.key or b"", letter.value or b"", letter.headers,
                        wait=backoff, on_retry=writer.note_retry)

    return send


def topic_consumer_factory(settings: Settings, topic: str, schema: type, database: Database,
                           producer: KafkaProducer, alerts: MutableMapping[str, list[str]]
                           ) -> Callable[[], TopicConsumer]:
    config = ConsumerConfig(settings.kafka_bootstrap_servers, settings.kafka_session_timeout_seconds,
                            settings.kafka_assignor)
    timings = ConsumerTimings.for_grace(settings.shutdown_grace_seconds)
    lanes = LanePolicy(window_seconds=settings.worker_not_found_window_seconds)

    def new_consumer() -> TopicConsumer:
        writer = ShardedBatchWriter(database, topic, WriterConfig(settings.worker_batch_timeout_seconds))
        send_dead_letter = dead_letter_sender(producer, writer)

        async def run_actor(partition: int, mailbox: trio.MemoryReceiveChannel[Record],
                            tracker: OffsetTracker) -> None:
            await PartitionActor(topic, partition, schema, mailbox, tracker, writer, send_dead_letter,
                                 max_batch=settings.worker_max_batch, lanes=lanes).run()

        return TopicConsumer(topic, ConfluentConsumer(topic, config), run_actor,
                             mailbox_size=settings.worker_mailbox_size, fetch_max=settings.worker_max_batch,
                             timings=timings, alerts=alerts)

    return new_consumer


def alerts_check(alerts: MutableMapping[str, list[str]]) -> Check:
    """``/readyz`` fails while a consumer reports a partition that needs attention, and says which."""

    async def check() -> None:
        problems = [problem for topic_problems in alerts.values() for problem in topic_problems]
        if problems:
            raise RuntimeError("; ".join(problems))

    return check


async def supervise_topic(new_consumer: Callable[[], TopicConsumer], topic: str, max_restarts: int,
                          stop: trio.Event, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Run the topic's consumer; restart a crashed one (a new consumer resumes from the committed
    offsets); more than ``max_restarts`` within ``RESTART_WINDOW_SECONDS`` ends the process."""
    restarts: deque[float] = deque()
    task_status.started()
    while not stop.is_set():
        consumer = new_consumer()
        try:
            await consumer.run(stop)
            return
        except Exception as exc:  # noqa: BLE001 - a crashed consumer is restarted, within limits
            now = trio.current_time()
            restarts.append(now)
            while restarts and restarts[0] < now - RESTART_WINDOW_SECONDS:
                restarts.popleft()
            RESTARTS.labels(topic).inc()
            log.exception("consumer crashed; restarting from the committed offsets", topic=topic,
                          restarts_in_window=len(restarts), error=repr(exc))
            if len(restarts) > max_restarts:
                log.error("too many restarts; exiting", topic=topic, limit=max_restarts,
                          window_seconds=RESTART_WINDOW_SECONDS)
                raise TooManyRestarts(f"{topic}: more than {max_restarts} restarts in "
                                      f"{RESTART_WINDOW_SECONDS:.0f} s") from exc
            await trio.sleep(RESTART_DELAY_SECONDS)  # a crash loop must not spin


async def serve_workers(
    settings: Settings,
    loop: trio_asyncio.TrioEventLoop,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with open_database(loop, settings.database_urls) as database, trio.open_nursery() as outer:
        producer = KafkaProducer(settings.kafka_bootstrap_servers, delivery_timeout_seconds=10.0)
        await outer.start(producer.run)
        alerts: dict[str, list[str]] = {}
        async with trio.open_nursery() as inner:
            for logical, schema in SCHEMAS.items():
                topic = settings.topic(logical)
                new_consumer = topic_consumer_factory(settings, topic, schema, database, producer, alerts)
                await inner.start(supervise_topic, new_consumer, topic, settings.worker_max_restarts, shutdown)
            checks: dict[str, Check] = {"broker": broker_check(settings.kafka_bootstrap_servers),
                                        "dlq_producer": producer_check(producer), "partitions": alerts_check(alerts)}
            checks.update({f"shard{i}": partial(database.ping, i) for i in range(database.shard_count)})
            urls = await inner.start(partial(serve_http, grace_seconds=settings.shutdown_grace_seconds),
                                     probes_app("workers", checks), settings.bind_host, settings.workers_port,
                                     shutdown)
            task_status.started(urls)
        outer.cancel_scope.cancel()  # consumers are done: the DLQ producer flushes and ends
