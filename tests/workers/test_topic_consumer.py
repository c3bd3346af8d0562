"""TopicConsumer through membership changes and faults, on the fake broker and the autojump clock.

Every scenario ends with the same checks: each event applied exactly once and in
order per user, and the committed position of each partition equal to the end of
its contiguous done prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from shared.messages import OrderWebhook
from tests.workers.fake_broker import FakeBroker, FakeConsumer
from tests.workers.memory_store import (
    DeadLetters,
    MemoryStore,
    assert_all_applied_once_in_order,
    envelope_bytes,
    produce_lifecycles,
)
from workers.offset_tracker import OffsetTracker
from workers.partition_actor import PartitionActor
from workers.records import Record
from workers.retry_lanes import LanePolicy
from workers.topic_consumer import ConsumerTimings, TopicConsumer

TOPIC = "orders.webhooks"
TIMINGS = ConsumerTimings.for_grace(2.0)  # drain 1 s, final commit 0.4 s, close 0.4 s
USERS = [f"user-{i}" for i in range(12)]


@dataclass
class Member:
    consumer: TopicConsumer
    client: FakeConsumer
    stop: trio.Event = field(default_factory=trio.Event)
    ended: trio.Event = field(default_factory=trio.Event)
    actor_starts: list[int] = field(default_factory=list)


def member(broker: FakeBroker, name: str, store: MemoryStore, dead: DeadLetters, *, mailbox_size: int = 4,
           timings: ConsumerTimings = TIMINGS, alerts: dict[str, list[str]] | None = None) -> Member:
    client = broker.consumer(name)
    starts: list[int] = []

    async def run_actor(partition: int, mailbox: trio.MemoryReceiveChannel[Record], tracker: OffsetTracker) -> None:
        starts.append(partition)
        await PartitionActor(TOPIC, partition, OrderWebhook, mailbox, tracker, store, dead.send, max_batch=2,
                             lanes=LanePolicy(window_seconds=2.0)).run()

    consumer = TopicConsumer(TOPIC, client, run_actor, mailbox_size=mailbox_size, fetch_max=10, timings=timings,
                             alerts=alerts)
    return Member(consumer, client, actor_starts=starts)


async def start(nursery: trio.Nursery, m: Member) -> Member:
    async def run() -> None:
        try:
            await m.consumer.run(m.stop)
        finally:
            m.ended.set()

    nursery.start_soon(run)
    return m


async def wait_until(condition: Callable[[], bool], what: str, within: float = 120.0) -> None:
    with trio.move_on_after(within):
        while not condition():
            await trio.sleep(0.05)
        return
    raise AssertionError(f"timed out waiting until {what}")


def committed_everything(broker: FakeBroker) -> bool:
    return all(broker.committed.get(p, 0) == end for p, end in broker.end_offsets().items())


async def leave(m: Member) -> None:
    m.stop.set()
    await m.ended.wait()


async def test_a_paused_partition_flows_again_after_revoke_and_reassign(autojump_clock: trio.abc.Clock) -> None:
    """The stall seen after a scale-out and back: librdkafka keeps the pause across revoke → assign."""
    broker, store, dead = FakeBroker(TOPIC, 2), MemoryStore(), DeadLetters()
    store.gate = trio.Event()  # the database is stuck: mailboxes fill and both partitions are paused
    events = produce_lifecycles(broker, store, USERS)
    async with trio.open_nursery() as nursery:
        one = await start(nursery, member(broker, "one", store, dead))
        await wait_until(lambda: one.client.paused == {0, 1}, "both partitions are paused")
        two = await start(nursery, member(broker, "two", store, dead))
        await wait_until(lambda: one.consumer.partitions == [0] and two.consumer.partitions == [1], "a scale-out")
        await leave(two)
        await wait_until(lambda: one.consumer.partitions == [0, 1], "the partitions came back")
        store.gate.set()
        await wait_until(lambda: len(store.applied) == events, "every event is applied")
        await wait_until(lambda: committed_everything(broker), "everything is committed")
        await leave(one)
    assert_all_applied_once_in_order(store, USERS)
    assert dead == []


async def test_a_lost_partition_stops_at_once_and_is_never_committed(autojump_clock: trio.abc.Clock) -> None:
    broker, store, dead = FakeBroker(TOPIC, 2), MemoryStore(), DeadLetters()
    store.gate = trio.Event()
    events = produce_lifecycles(broker, store, USERS)
    async with trio.open_nursery() as nursery:
        one = await start(nursery, member(broker, "one", store, dead))
        two = await start(nursery, member(broker, "two", store, dead))
        await wait_until(lambda: one.client.paused and two.consumer.partitions, "both own a busy partition")
        lost_at = trio.current_time()
        commits_before = len(broker.commits)
        broker.expire(one.client)
        await wait_until(lambda: one.consumer.partitions == [], "the lost partition is dropped")
        assert trio.current_time() - lost_at < TIMINGS.drain_seconds  # cancelled, not drained
        await wait_until(lambda: two.consumer.partitions == [0, 1], "the other member took it over")
        store.gate.set()
        await wait_until(lambda: len(store.applied) == events, "every event is applied")
        await wait_until(lambda: committed_everything(broker), "everything is committed")
        assert all(name == "two" for name, _ in broker.commits[commits_before:])
        await leave(two)
        await leave(one)
    assert_all_applied_once_in_order(store, USERS)


async def test_a_failed_commit_is_retried_while_the_partition_is_idle(autojump_clock: trio.abc.Clock) -> None:
    broker, store, dead = FakeBroker(TOPIC, 2), MemoryStore(), DeadLetters()
    broker.failing_commits = 5
    events = produce_lifecycles(broker, store, USERS)
    async with trio.open_nursery() as nursery:
        one = await start(nursery, member(broker, "one", store, dead))
        await wait_until(lambda: len(store.applied) == events, "every event is applied")
        assert not committed_everything(broker)  # the broker refused the commits so far
        await wait_until(lambda: committed_everything(broker), "the idle partitions are committed after all")
        assert broker.failing_commits == 0
        await leave(one)
    assert_all_applied_once_in_order(store, USERS)


async def test_a_commit_that_hangs_is_not_counted_and_is_retried(autojump_clock: trio.abc.Clock) -> None:
    broker, store, dead = FakeBroker(TOPIC, 1), MemoryStore(), DeadLetters()
    broker.commit_latency_seconds = 60.0  # the broker does not answer commits
    events = produce_lifecycles(broker, store, USERS[:3])
    async with trio.open_nursery() as nursery:
        one = await start(nursery, member(broker, "one", store, dead))
        await wait_until(lambda: len(store.applied) == events, "every event is applied")
        await trio.sleep(5)
        assert one.consumer.book(0).confirmed is None  # never answered: never confirmed
        broker.commit_latency_seconds = 0.0
        await wait_until(lambda: one.consumer.book(0).confirmed == events, "confirmed once the broker answers")
        await leave(one)


async def test_sigterm_mid_batch_drains_commits_the_done_prefix_and_leaves_within_the_grace(
        autojump_clock: trio.abc.Clock) -> None:
    grace = 10.0
    timings = ConsumerTimings.for_grace(grace)
    broker, store, dead = FakeBroker(TOPIC, 1), MemoryStore(), DeadLetters()
    store.latency_seconds = 3.0  # each batch of two takes 3 s: the drain cannot finish the mailbox
    events = produce_lifecycles(broker, store, USERS[:4])
    async with trio.open_nursery() as nursery:
        one = await start(nursery, member(broker, "one", store, dead, timings=timings))
        await wait_until(lambda: store.batches == 1, "the first batch is applied")
        await trio.sleep(1.0)  # the second batch is in flight
        stopped_at = trio.current_time()
        one.stop.set()
        await one.ended.wait()
        assert trio.current_time() - stopped_at < grace
    done = len(store.applied)
    assert 2 < done < events  # the in-flight batch finished, the drain deadline cut the rest
    assert broker.committed == {0: done}  # exactly the done prefix, confirmed before leaving
    assert broker.members == []


async def test_cooperative_join_moves_only_some_partitions(autojump_clock: trio.abc.Clock) -> None:
    broker, store, dead = FakeBroker(TOPIC, 4, cooperative=True), MemoryStore(), DeadLetters()
    first = produce_lifecycles(broker, store, USERS[:6])
    async with trio.open_nursery() as nursery:
        one = await start(nursery, member(broker, "one", store, dead))
        await wait_until(lambda: len(store.applied) == first, "the first events are applied")
        two = await start(nursery, member(broker, "two", store, dead))
        await wait_until(lambda: len(one.consumer.partitions) == 2 and len(two.consumer.partitions) == 2, "a split")
        assert sorted(one.actor_starts) == [0, 1, 2, 3]  # the two it kept were never revoked or restarted
        later = produce_lifecycles(broker, store, USERS[6:])
        await wait_until(lambda: len(store.applied) == first + later, "every event is applied")
        await wait_until(lambda: committed_everything(broker), "everything is committed")
        await leave(two)
        await wait_until(lambda: one.consumer.partitions == [0, 1, 2, 3], "the partitions came back")
        await leave(one)
    assert_all_applied_once_in_order(store, USERS)


async def test_a_partition_paused_behind_our_back_is_reported(autojump_clock: trio.abc.Clock) -> None:
    broker, store, dead = FakeBroker(TOPIC, 1), MemoryStore(), DeadLetters()
    alerts: dict[str, list[str]] = {}
    async with trio.open_nursery() as nursery:
        one = await start(nursery, member(broker, "one", store, dead, alerts=alerts))
        await wait_until(lambda: one.consumer.partitions == [0], "assigned")
        one.client.pause([0])  # what a pause kept across a rebalance looks like from the inside
        produce_lifecycles(broker, store, USERS[:2])
        await wait_until(lambda: bool(alerts.get(TOPIC)), "an alert", within=TIMINGS.stall_seconds * 3)
        assert "partition 0 has a lag of 8" in alerts[TOPIC][0]
        one.client.resume([0])
        await wait_until(lambda: alerts.get(TOPIC) == [], "the alert clears")
        await leave(one)


async def test_an_unknown_order_does_not_hold_up_its_partition(autojump_clock: trio.abc.Clock) -> None:
    broker, store, dead = FakeBroker(TOPIC, 1), MemoryStore(), DeadLetters()
    broker.produce(0, b"late", envelope_bytes("late", "paid", 0))  # its order does not exist yet
    events = produce_lifecycles(broker, store, USERS[:4])
    async with trio.open_nursery() as nursery:
        one = await start(nursery, member(broker, "one", store, dead))
        await wait_until(lambda: len(store.applied) == events, "the other users' events are applied")
        assert broker.committed.get(0, 0) == 0  # the waiting event holds the committed prefix
        store.create_order("order-late", "late")
        await wait_until(lambda: committed_everything(broker), "everything is committed")
        assert store.statuses("order-late") == ["paid"]
        await leave(one)
    assert dead == []


async def test_backpressure_with_a_slow_broker_raises_no_false_alert(autojump_clock: trio.abc.Clock) -> None:
    """The actor drains while a commit is out: pause and depth are read afresh before judging."""
    broker, store, dead = FakeBroker(TOPIC, 1), MemoryStore(), DeadLetters()
    broker.commit_latency_seconds = 0.3
    store.latency_seconds = 0.01
    alerts: dict[str, list[str]] = {}
    raised: list[list[str]] = []
    timings = ConsumerTimings(drain_seconds=1.0, commit_seconds=1.0, close_seconds=1.0, health_interval_seconds=1.0)

    async def watch() -> None:
        while True:
            if alerts.get(TOPIC):
                raised.append(alerts[TOPIC])
            await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        one = await start(nursery, member(broker, "one", store, dead, mailbox_size=8, timings=timings, alerts=alerts))
        events = produce_lifecycles(broker, store, [f"user-{i}" for i in range(60)])
        await wait_until(lambda: len(store.applied) == events, "every event is applied")
        await wait_until(lambda: committed_everything(broker), "everything is committed")
        await leave(one)
        nursery.cancel_scope.cancel()
    assert raised == []


async def test_sigterm_during_a_revoke_callback_drains_once_within_the_grace(autojump_clock: trio.abc.Clock) -> None:
    broker, store, dead = FakeBroker(TOPIC, 2), MemoryStore(), DeadLetters()
    store.gate = trio.Event()  # nothing can drain: every drain runs to its deadline
    produce_lifecycles(broker, store, USERS)
    async with trio.open_nursery() as nursery:
        one = await start(nursery, member(broker, "one", store, dead))
        await wait_until(lambda: one.client.paused == {0, 1}, "both partitions are busy")
        revoking_at = trio.current_time()
        await start(nursery, member(broker, "two", store, dead))  # one's revoke callback starts draining
        await trio.sleep_until(revoking_at + 0.1)
        stopped_at = trio.current_time()
        one.stop.set()  # SIGTERM just after the callback's drain began
        await one.ended.wait()
        elapsed = trio.current_time() - stopped_at
        nursery.cancel_scope.cancel()
    # one drain deadline from SIGTERM on, shared by the callback's revoke and the final one (not two in a row)
    assert elapsed <= TIMINGS.drain_seconds + TIMINGS.commit_seconds
