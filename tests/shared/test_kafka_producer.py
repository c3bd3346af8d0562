"""The shared producer replaces a dead confluent producer: a fake client on the autojump clock.

The fake copies what confluent-kafka 2.16 / librdkafka were seen to do (see the freeze test):
a fatal error is raised from ``poll()`` as a ``KafkaException`` whose error is ``fatal()``
(``error_cb`` never sees it), ``produce()`` then raises ``_FATAL``; a fenced idempotent
producer reports ``PRODUCER_FENCED`` per record, not fatal; ``close()`` flushes, serving
the remaining callbacks on the calling thread.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio
import trio.lowlevel
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from shared.broker_probe import producer_check
from shared.errors import BrokerUnavailable
from shared.kafka_producer import RECREATIONS, KafkaProducer
from shared.topics import admin_client, create_topics
from tests.frozen_broker import own_broker, read_values

FENCED = KafkaError(KafkaError.PRODUCER_FENCED, "Broker: There is a newer producer with the same transactionalId")
GAPLESS = KafkaError(KafkaError._GAPLESS_GUARANTEE, "unable to satisfy gap-less guarantee", fatal=True)
TIMED_OUT = KafkaError(KafkaError._MSG_TIMED_OUT, "Local: Message timed out")


class FakeClient:
    """A confluent ``Producer`` whose outcomes the test decides."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.queued: list[tuple[str, Callable[[KafkaError | None, Message], None]]] = []
        self.outcome: KafkaError | None = None  # what poll() reports for each queued record; None = acked
        self.holding = False  # poll() reports nothing (a frozen broker)
        self.poll_raises: KafkaException | None = None
        self.produce_raises: KafkaException | None = None
        self.events: list[Callable[[], None]] = []  # error_cb / stats_cb calls for the next poll()
        self.offset, self.purged, self.closed = 0, False, False

    def produce(self, topic: str, value: bytes, key: bytes, *, headers: list[tuple[str, bytes]],
                on_delivery: Callable[[KafkaError | None, Message], None]) -> None:
        if self.produce_raises is not None:
            raise self.produce_raises
        self.queued.append((topic, on_delivery))

    def poll(self, timeout: float) -> int:
        if self.poll_raises is not None:
            exc, self.poll_raises = self.poll_raises, None
            raise exc
        events, self.events = self.events, []
        for event in events:
            event()
        if self.holding:
            return len(events)
        return len(events) + self._report(self.outcome)

    def _report(self, error: KafkaError | None) -> int:
        queued, self.queued = self.queued, []
        for topic, callback in queued:
            self.offset += 1
            callback(error, Message(topic=topic, partition=0, offset=self.offset if error is None else -1001))
        return len(queued)

    def emit_error(self, error: KafkaError) -> None:
        self.events.append(lambda: self.config["error_cb"](error))

    def emit_statistics(self, idemp_state: str, producer_id: int) -> None:
        stats = json.dumps({"eos": {"idemp_state": idemp_state, "producer_id": producer_id}})
        self.events.append(lambda: self.config["stats_cb"](stats))

    def purge(self, *, in_queue: bool, in_flight: bool) -> None:
        self.purged = True

    def close(self) -> bool:  # flushes, serving callbacks on the calling thread: late, successful acks
        self._report(None)
        self.closed = True
        return True

    def __len__(self) -> int:
        return len(self.queued)


class Clients(list[FakeClient]):
    def __call__(self, config: dict[str, Any]) -> FakeClient:
        self.append(FakeClient(config))
        return self[-1]


async def settled(predicate: Callable[[], bool]) -> None:
    """Until ``predicate`` holds, without moving the clock: the replaced client closes on a worker thread,
    which the autojump clock cannot see."""
    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline, "never settled"
        await trio.lowlevel.checkpoint()


def _recreations(error: str | None = None) -> float:
    return sum(sample.value for metric in RECREATIONS.collect() for sample in metric.samples
               if sample.name.endswith("_total") and error in (None, sample.labels["error"]))


class Outcomes:
    """The result of each ``produce()`` started through ``start``."""

    def __init__(self, producer: KafkaProducer, nursery: trio.Nursery) -> None:
        self.producer, self.nursery = producer, nursery
        self.results: dict[str, object] = {}

    def start(self, name: str) -> None:
        async def one() -> None:
            try:
                self.results[name] = await self.producer.produce("orders", b"k", name.encode(), [])
            except BrokerUnavailable as exc:
                self.results[name] = exc

        self.nursery.start_soon(one)

    def failed(self, name: str) -> str:
        result = self.results[name]
        assert isinstance(result, BrokerUnavailable), result
        return result.detail


Running = tuple[KafkaProducer, Outcomes]


@pytest.fixture
def clients() -> Clients:
    return Clients()


@pytest.fixture
async def running(clients: Clients) -> AsyncIterator[Running]:  # each test asks for autojump_clock itself
    producer = KafkaProducer("fake:9092", delivery_timeout_seconds=5.0, factory=clients)
    async with trio.open_nursery() as nursery:
        await nursery.start(producer.run)
        yield producer, Outcomes(producer, nursery)
        nursery.cancel_scope.cancel()


async def test_a_fenced_producer_is_replaced_and_its_waiters_answered_unavailable(
        clients: Clients, running: Running, autojump_clock: trio.abc.Clock) -> None:
    producer, outcomes = running
    before = _recreations()
    outcomes.start("acked")
    await trio.sleep(0.1)
    assert outcomes.results["acked"] == 1 and producer.statistics().problem is None
    clients[0].outcome = FENCED
    outcomes.start("fenced")
    await trio.sleep(0.1)
    assert "newer producer" in outcomes.failed("fenced")
    await settled(lambda: clients[0].closed)
    assert len(clients) == 2 and clients[0].purged
    assert _recreations() == before + 1
    problem = producer.statistics().problem
    with pytest.raises(BrokerUnavailable) as not_ready:  # what /readyz shows
        await producer_check(producer)()
    assert not_ready.value.detail == problem
    assert problem is not None and problem.startswith("producer recreated after fatal error (until the broker "
                                                      "confirms it): PRODUCER_FENCED: Broker: There is a newer")
    outcomes.start("after")
    await trio.sleep(0.1)
    assert outcomes.results["after"] == 1  # the fresh client's first offset
    assert producer.statistics().problem is None and producer.statistics().recreations == 1
    await producer_check(producer)()


async def test_a_fatal_error_from_poll_answers_every_record_in_flight_at_once(clients: Clients, running: Running,
                                                                              autojump_clock: trio.abc.Clock) -> None:
    producer, outcomes = running
    clients[0].holding = True  # the broker answers nothing
    for name in ("a", "b", "c"):
        outcomes.start(name)
    await trio.sleep(0.5)
    assert outcomes.results == {}
    clients[0].poll_raises = KafkaException(GAPLESS)
    started = trio.current_time()
    await trio.sleep(0.01)
    assert trio.current_time() - started < 0.1
    assert all("_GAPLESS_GUARANTEE" in outcomes.failed(name) for name in "abc")
    await settled(lambda: clients[0].closed)
    assert len(clients) == 2
    # the old client's flush on close acked them late: nobody was told "accepted"
    assert all(isinstance(outcomes.results[name], BrokerUnavailable) for name in "abc")


async def test_a_fatal_error_raised_by_produce_replaces_the_producer(clients: Clients, running: Running,
                                                                     autojump_clock: trio.abc.Clock) -> None:
    producer, outcomes = running
    clients[0].produce_raises = KafkaException(KafkaError(KafkaError._FATAL, "Unable to produce message: Fatal"))
    outcomes.start("refused")
    await trio.sleep(0.1)
    assert "Fatal" in outcomes.failed("refused") and len(clients) == 2
    outcomes.start("after")
    await trio.sleep(0.1)
    assert outcomes.results["after"] == 1


async def test_a_fatal_error_callback_replaces_the_producer(clients: Clients, running: Running,
                                                            autojump_clock: trio.abc.Clock) -> None:
    producer, outcomes = running
    clients[0].emit_error(GAPLESS)
    await trio.sleep(1)  # idle: the poll task still serves events
    assert len(clients) == 2 and producer.statistics().recreations == 1


async def test_non_fatal_errors_keep_the_producer(clients: Clients, running: Running,
                                                  autojump_clock: trio.abc.Clock) -> None:
    producer, outcomes = running
    clients[0].emit_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    clients[0].outcome = TIMED_OUT
    outcomes.start("timed-out")
    await trio.sleep(1)
    assert "timed out" in outcomes.failed("timed-out")
    assert len(clients) == 1 and producer.statistics().problem is None


async def test_readiness_returns_once_the_new_producer_has_its_id_without_traffic(
        clients: Clients, running: Running, autojump_clock: trio.abc.Clock) -> None:
    producer, outcomes = running
    clients[0].emit_error(GAPLESS)
    await trio.sleep(1)
    clients[1].emit_statistics("WaitPID", -1)
    await trio.sleep(1)
    assert producer.statistics().problem is not None
    clients[1].emit_statistics("Assigned", 7)
    await trio.sleep(1)
    assert producer.statistics().problem is None


async def test_a_producer_fenced_again_and_again_is_replaced_with_backoff(clients: Clients, running: Running,
                                                                          autojump_clock: trio.abc.Clock) -> None:
    producer, outcomes = running
    replaced_at = []
    for round_ in range(4):
        clients[-1].outcome = FENCED
        outcomes.start(f"r{round_}")
        count = len(clients)
        while len(clients) == count:
            await trio.sleep(0.01)
            if len(clients) == count and producer.statistics().phase == "recreation pending":
                with pytest.raises(BrokerUnavailable, match="recreation pending"):  # at once, not at a timeout
                    await producer.produce("orders", b"k", b"refused", [])
        replaced_at.append(trio.current_time())
    gaps = [round(b - a) for a, b in zip(replaced_at, replaced_at[1:], strict=False)]
    assert gaps == [1, 2, 4]
    outcomes.start("acked")
    await trio.sleep(0.1)
    assert outcomes.results["acked"] == 1 and producer.statistics().problem is None


async def test_shutdown_delivers_what_it_can_then_answers_the_rest(clients: Clients,
                                                                    autojump_clock: trio.abc.Clock) -> None:
    producer = KafkaProducer("fake:9092", factory=clients)
    async with trio.open_nursery() as callers:
        outcomes = Outcomes(producer, callers)
        async with trio.open_nursery() as service:
            await service.start(producer.run)
            clients[0].holding = True
            outcomes.start("stuck")
            await trio.sleep(0.1)
            clients[0].queued.append(("orders", lambda error, message: None))  # a caller that gave up
            stopped_at = trio.current_time()
            service.cancel_scope.cancel()
    assert trio.current_time() - stopped_at >= 5.0  # FLUSH_DEADLINE_SECONDS, then a bounded close
    assert "shutting down" in outcomes.failed("stuck") and clients[0].purged
    await settled(lambda: clients[0].closed)


# --- the real fatal path: librdkafka against a frozen tansu ---------------------------------------


def _gapless(config: dict[str, Any]) -> Producer:
    """With the gap-less guarantee, the fence tansu answers after a stall is a *fatal* error."""
    return Producer({**config, "enable.gapless.guarantee": True})


async def test_a_real_fatal_error_after_a_broker_freeze_is_survived() -> None:
    delivery_timeout = 2.0
    with trio.fail_after(60):
        async with own_broker() as broker:
            admin = admin_client(broker.bootstrap_servers)
            await trio.to_thread.run_sync(create_topics, admin, ["frozen"], 3)
            producer = KafkaProducer(broker.bootstrap_servers, delivery_timeout_seconds=delivery_timeout,
                                     factory=_gapless)
            acked: list[bytes] = []
            before = _recreations("_GAPLESS_GUARANTEE")

            async def send(value: bytes) -> None:
                with contextlib.suppress(BrokerUnavailable):
                    await producer.produce("frozen", b"k", value, [])
                    acked.append(value)

            async with trio.open_nursery() as nursery:
                await nursery.start(producer.run)
                await send(b"before")
                broker.freeze()
                for n in range(int((delivery_timeout + 2) / 0.1)):
                    nursery.start_soon(send, b"frozen-%d" % n)
                    await trio.sleep(0.1)
                thawed_at = broker.thaw()
                n = 0
                while not any(value.startswith(b"after") for value in acked):
                    nursery.start_soon(send, b"after-%d" % n)
                    n += 1
                    await trio.sleep(0.1)
                recovered_after = trio.current_time() - thawed_at
                nursery.cancel_scope.cancel()
            on_topic = set(await trio.to_thread.run_sync(read_values, broker.bootstrap_servers, "frozen", 3))
    assert producer.statistics().recreations == 1 and _recreations("_GAPLESS_GUARANTEE") == before + 1
    assert recovered_after < 5, recovered_after
    assert set(acked) <= on_topic, "acknowledged yet not on the topic"

