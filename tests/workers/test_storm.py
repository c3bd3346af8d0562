"""A membership storm against the embedded broker and PostgreSQL, with real worker processes.

For the first seconds the test holds every order row locked, so the workers' batches
wait, their small mailboxes fill and every partition is paused for backpressure —
while worker processes join and leave, so paused partitions are revoked and assigned
again (the scale-out-and-back that once stranded them). Then the locks go and the
storm goes on: processes join, leave (SIGTERM) and die (kill -9) every few seconds
over a stream of per-order event sequences. Afterwards every event is stored exactly once and applied in
order, nothing is dead-lettered, no partition is left paused or stalled, and the
group's committed offsets reach the end of every partition (lag zero).

A worker joins or leaves (SIGTERM) only once the group has settled, the rest of the schedule
pushed back by the wait: a member leaving just as a rebalance starts jams the embedded
broker's group for good (JoinGroup names the departed member leader and SyncGroup answers
REBALANCE_IN_PROGRESS forever — a tansu bug reproduced with plain confluent-kafka consumers,
README "Reliability"), and on a slow machine the schedule's leaves landed in the rebalances
of the joins before them. Kills (-9) keep their times: a dead member sends no LeaveGroup.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping

import asyncpg
import httpx
import trio
from confluent_kafka import Consumer, TopicPartition

from shared.settings import Settings
from shared.topics import ALL_TOPICS, DISPUTES, ORDERS, admin_client, create_topics
from tests.workers.conftest import Shards, produce, wait_until
from tests.workers.test_workers import LIFECYCLE, _dlq_count, interleaved
from webhooks.bench.stack import group_settled
from webhooks.child_process import ChildProcess, open_child
from webhooks.devstack import wait_ready
from webhooks.embedded import free_port

PARTITIONS = 6
USERS = [f"user-{i}" for i in range(240)]
WAVES = 6
LOCKED_UNTIL = 12  # schedule seconds: the database holds every batch until the schedule gets there
# (seconds after the start, action, worker): the storm
SCHEDULE = [(0, "start", "a"), (3, "start", "b"), (6, "start", "c"), (9, "sigterm", "b"), (14, "kill", "c"),
            (16, "start", "d"), (19, "sigterm", "a"), (21, "start", "e"), (24, "kill", "d")]


class Workers:
    """Worker processes by name, each on its own port; the storm starts and stops them."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.processes: dict[str, tuple[ChildProcess, str]] = {}
        self.exits: dict[str, int] = {}
        self.stopping: set[str] = set()  # sent SIGTERM: draining and leaving
        self.max_paused = 0

    async def run(self, name: str, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**self.env, "WORKERS_PORT": str(port)}
        async with open_child([sys.executable, "-m", "workers"], env=env) as process:
            self.processes[name] = (process, url)
            await wait_ready(url + "/healthz", process)
            task_status.started()
            self.exits[name] = await process.wait()

    def live(self) -> list[str]:
        """Running workers that were not told to stop."""
        return [name for name, (process, _) in self.processes.items()
                if process.returncode is None and name not in self.stopping]

    async def settled(self) -> bool:
        """No rebalance under way: every partition of both topics owned by the live workers, each of them
        owning some (summed over both topics: the storm may run more workers than a topic has partitions)."""
        texts = []
        async with httpx.AsyncClient(timeout=2.0) as client:
            for name in self.live():
                try:
                    texts.append((await client.get(self.processes[name][1] + "/metrics")).text)
                except httpx.TransportError:
                    return False
        return group_settled(texts, None, 2 * PARTITIONS)

    def stop(self, name: str, how: str) -> None:
        process, _ = self.processes[name]
        if how == "kill":
            process.kill()
        else:
            self.stopping.add(name)
            process.send_signal(signal.SIGTERM)

    async def watch_pauses(self) -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                for process, url in list(self.processes.values()):
                    if process.returncode is None:
                        try:
                            paused = _metric((await client.get(url + "/metrics")).text, "worker_paused_partitions")
                        except httpx.TransportError:
                            continue
                        self.max_paused = max(self.max_paused, int(paused))
                await trio.sleep(0.2)


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def _end_offsets(settings: Settings, topic: str) -> list[int]:
    """One past the last record of each partition, found by reading them: tansu's ListOffsets answers
    the base offset of the last produced batch + 1, not the end (measured), so watermarks cannot say."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "storm-reader",
                         "enable.auto.commit": False})
    ends = [0] * PARTITIONS
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        while messages := consumer.consume(1000, 2.0):
            for message in messages:
                if message.error() is None:
                    ends[message.partition()] = max(ends[message.partition()], message.offset() + 1)
    finally:
        consumer.close()
    return ends


def _committed(settings: Settings, topic: str) -> list[int]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": topic})
    try:
        return [tp.offset for tp in consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], 10)]
    finally:
        consumer.close()


async def test_a_membership_storm_loses_nothing_and_strands_nothing(
        settings: Settings, service_env: dict[str, str], shards: Shards) -> None:
    settings = settings.replace(topic_partitions=PARTITIONS)
    await trio.to_thread.run_sync(create_topics, admin_client(settings.kafka_bootstrap_servers),
                                  [settings.topic(t) for t in ALL_TOPICS], PARTITIONS)
    await shards.seed_orders(USERS)
    events = interleaved(USERS)  # every user's lifecycle, users interleaved
    env = {**service_env, "TOPIC_PARTITIONS": str(PARTITIONS), "WORKER_MAILBOX_SIZE": "8", "WORKER_MAX_BATCH": "4",
           "SHUTDOWN_GRACE": "4s"}
    workers = Workers(env)
    orders_topic = settings.topic(ORDERS)
    with trio.fail_after(150):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(workers.watch_pauses)
            started = trio.current_time()
            unlocked = trio.Event()  # set once the schedule reaches LOCKED_UNTIL, however far it was pushed back
            nursery.start_soon(_hold_order_locks, shards, unlocked)
            wave = len(events) // WAVES
            for index in range(WAVES):  # the stream goes on through the storm
                nursery.start_soon(_produce_at, settings, events[index * wave:(index + 1) * wave],
                                   started + 1 + index * 4.0)
            delay = 0.0  # waits for the group to settle push the rest of the schedule back
            for at, action, name in SCHEDULE:
                await trio.sleep_until(started + at + delay)
                if at >= LOCKED_UNTIL:
                    unlocked.set()
                if action != "kill" and workers.live():  # joins and leaves only between rebalances (module doc)
                    waited_from = trio.current_time()
                    await wait_until(workers.settled, "the group has settled", within=30)
                    delay += trio.current_time() - waited_from
                if action == "start":
                    await nursery.start(workers.run, name)
                else:
                    workers.stop(name, action)
            await wait_until(lambda: _stored(shards, len(events)), "every event is stored", within=90)
            ends = await trio.to_thread.run_sync(_end_offsets, settings, orders_topic)
            assert sum(ends) == len(events)

            async def lag_zero() -> bool:
                return await trio.to_thread.run_sync(_committed, settings, orders_topic) == ends

            await wait_until(lag_zero, "the committed offsets reach the end of every partition", within=30)
            _, survivor = workers.processes["e"]
            async with httpx.AsyncClient(timeout=5.0) as client:
                metrics = (await client.get(survivor + "/metrics")).text
                ready = await client.get(survivor + "/readyz")
            nursery.cancel_scope.cancel()
    assert workers.exits["a"] == 0 and workers.exits["b"] == 0  # SIGTERM: drained, committed, left
    assert workers.max_paused >= 1  # backpressure really paused partitions during the storm
    assert await shards.count("order_events") == len(events)  # exactly once
    statuses = [row["status"] for row in await shards.fetch("SELECT status FROM orders")]
    assert statuses == [LIFECYCLE[-1]] * len(USERS)  # every lifecycle complete: applied in order
    assert await shards.fetch("SELECT 1 FROM order_events WHERE NOT applied") == []
    for logical in (ORDERS, DISPUTES):
        assert await _dlq_count(settings, logical) == 0
    assert ready.status_code == 200, ready.text
    assert _metric(metrics, "worker_stalled_partitions") == 0
    assert _metric(metrics, "worker_paused_partitions") == 0
    assert _metric(metrics, "worker_assigned_partitions") == 2 * PARTITIONS  # both topics, every partition


async def _hold_order_locks(shards: Shards, unlocked: trio.Event) -> None:
    connections = [await shards.loop.run_aio_coroutine(asyncpg.connect(url)) for url in shards.urls]
    try:
        for conn in connections:
            await shards.loop.run_aio_coroutine(conn.execute("BEGIN; SELECT 1 FROM orders FOR UPDATE"))
        await unlocked.wait()
    finally:
        with trio.CancelScope(shield=True):
            for conn in connections:
                await shards.loop.run_aio_coroutine(conn.close())


async def _produce_at(settings: Settings, events: list, at: float) -> None:
    await trio.sleep_until(at)
    await trio.to_thread.run_sync(produce, settings, events)


async def _stored(shards: Shards, expected: int) -> bool:
    return await shards.count("order_events") >= expected
