"""PartitionActor's retry lanes on the autojump clock: other users flow, one user's order holds."""

from __future__ import annotations

import pytest
import trio

from shared.errors import InvalidInput
from shared.messages import DisputeWebhook, OrderWebhook
from tests.workers.memory_store import DeadLetters, MemoryStore, envelope_bytes
from workers.offset_tracker import OffsetTracker
from workers.partition_actor import PartitionActor, decode_update
from workers.records import Record
from workers.retry_lanes import LanePolicy

WINDOW = 5.0


async def run_actor(store: MemoryStore, dead: DeadLetters, records: list[bytes], *,
                    until: trio.Event) -> OffsetTracker:
    """Feed ``records`` (one partition, in offset order) and run the actor until ``until`` is set."""
    tracker = OffsetTracker()
    send, receive = trio.open_memory_channel[Record](100)
    actor = PartitionActor("orders.webhooks", 0, OrderWebhook, receive, tracker, store, dead.send, max_batch=50,
                           lanes=LanePolicy(window_seconds=WINDOW))
    for offset, value in enumerate(records):
        tracker.received(offset)
        send.send_nowait(Record("orders.webhooks", 0, offset, b"k", value, []))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor.run)
        await until.wait()
        await send.aclose()
    return tracker


async def test_a_users_events_wait_behind_their_unknown_order_while_others_flow(
        autojump_clock: trio.abc.Clock) -> None:
    store, dead, done = MemoryStore(), DeadLetters(), trio.Event()
    store.create_order("order-b", "b")
    store.create_order("order-a2", "a")  # a's second event is for an order that exists
    records = [envelope_bytes("a", "pending", 0, "order-a1"), envelope_bytes("b", "pending", 1),
               envelope_bytes("a", "paid", 2, "order-a2"), envelope_bytes("b", "paid", 3)]
    seen: dict[str, float] = {}

    async def watch() -> None:
        while len(store.applied) < 4:
            await trio.sleep(0.01)
            if store.statuses("order-b") == ["pending", "paid"]:
                seen.setdefault("b", trio.current_time())
            if store.statuses("order-a2"):
                seen.setdefault("a2", trio.current_time())
            if trio.current_time() > 1.0 and "order-a1" not in store.orders:
                store.create_order("order-a1", "a")  # the order arrives a second late
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        tracker = await run_actor(store, dead, records, until=done)
    assert seen["b"] < 0.1  # b was not held up by a's unknown order
    assert seen["a2"] > 1.0  # a's later event waited behind the unknown one, though its order existed
    assert [u.order_id for u in store.applied if u.user_id == "a"] == ["order-a1", "order-a2"]
    assert tracker.position() == 4 and dead == []


async def test_after_its_window_the_unknown_event_is_dead_lettered_and_its_user_moves_on(
        autojump_clock: trio.abc.Clock) -> None:
    store, dead, done = MemoryStore(), DeadLetters(), trio.Event()
    store.create_order("order-a", "a")
    records = [envelope_bytes("a", "paid", 0, "order-nobody"), envelope_bytes("a", "paid", 1)]

    async def watch() -> None:
        while not store.applied:
            await trio.sleep(0.5)
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        started = trio.current_time()
        tracker = await run_actor(store, dead, records, until=done)
    assert trio.current_time() - started >= WINDOW
    assert dead.reasons() == ["not_found"]
    headers = dict(dead[0].headers)
    assert headers["dlq.original.offset"] == b"0" and int(headers["dlq.attempts"]) >= 5
    assert store.statuses("order-a") == ["paid"]
    assert tracker.position() == 2


async def test_an_actor_with_full_lanes_still_ends_when_its_mailbox_closes(autojump_clock: trio.abc.Clock) -> None:
    store, dead = MemoryStore(), DeadLetters()
    tracker = OffsetTracker()
    send, receive = trio.open_memory_channel[Record](100)
    actor = PartitionActor("orders.webhooks", 0, OrderWebhook, receive, tracker, store, dead.send, max_batch=50,
                           lanes=LanePolicy(window_seconds=30.0, max_events=2))
    for offset, user in enumerate(["a", "b"]):  # two unknown orders: the lanes are full
        tracker.received(offset)
        send.send_nowait(Record("orders.webhooks", 0, offset, b"k", envelope_bytes(user, "paid", 0), []))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(actor.run)
        await trio.sleep(1.0)
        closed_at = trio.current_time()
        await send.aclose()  # revoked
    assert trio.current_time() - closed_at <= LanePolicy().max_delay_seconds  # not the 30 s window
    assert dead == [] and tracker.position() == 0  # the lanes' events stay for the next owner


def test_a_record_nested_too_deeply_is_a_poison_record_not_a_crash() -> None:
    """msgspec raises RecursionError past ~1,000 levels; the actor would crash on it, restart,
    read the same record and crash again."""
    deep = b'{"unknown":' + b"[" * 5000 + b"]" * 5000 + b"}"
    for schema in (OrderWebhook, DisputeWebhook):
        with pytest.raises(InvalidInput, match="nested too deeply"):
            decode_update(deep, schema)
