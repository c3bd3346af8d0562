"""The faults, each a schedule run from the start of the load, and the scenarios built from them.

A fault notes its windows (wall clock, fault on → fault over) in ``Stage.windows``; the
audit measures recovery from each window's end. Times are seconds after the load started.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio
from confluent_kafka import Producer

from shared.envelope import TraceContext, build_envelope
from shared.messages import OrderWebhook, encode_json
from shared.settings import Mode
from shared.topics import DISPUTES, ORDERS
from webhooks.chaos.delay_proxy import DelayProxy
from webhooks.chaos.dependencies import Dependencies
from webhooks.chaos.system import System

KAFKA: tuple[Mode, ...] = ("kafka",)
SYNC: tuple[Mode, ...] = ("http", "grpc")
ALL: tuple[Mode, ...] = ("kafka", "http", "grpc")


@dataclass
class Stage:
    """What a fault can reach during one run."""

    system: System
    deps: Dependencies
    topic_prefix: str
    proxy: DelayProxy | None
    rng: random.Random
    load_seconds: float
    windows: list[tuple[float, float]] = field(default_factory=list)
    poison: dict[str, str] = field(default_factory=dict)  # record key → the dlq.reason it must get
    started: float = 0.0  # trio clock at the load's start

    async def at(self, seconds: float) -> None:
        await trio.sleep_until(self.started + seconds)


Fault = Callable[[Stage], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    modes: tuple[Mode, ...]
    fault: Fault
    load_seconds: float
    workers: int = 2
    env: dict[str, str] = field(default_factory=dict)
    delayed_api: bool = False  # ingest reaches the api through a DelayProxy


async def worker_kill(stage: Stage, kills: int = 10) -> None:
    """kill -9 of a random worker at ``kills`` random points, each restarted at once."""
    points = sorted(stage.rng.uniform(3, stage.load_seconds - 5) for _ in range(kills))
    for point in points:
        await stage.at(point)
        victim = stage.rng.choice(stage.system.alive("workers"))
        begun = time.time()
        await stage.system.kill(victim)
        await stage.system.start(victim)
        stage.windows.append((begun, time.time()))


async def rebalance_storm(stage: Stage) -> None:
    """Every 3 s a worker joins, leaves (SIGTERM) or dies (kill -9), while small mailboxes keep
    partitions paused; at least one worker stays and two remain at the end."""
    begun, extra = time.time(), 2
    actions = ["start", "sigterm", "start", "kill", "start", "sigterm", "start", "kill", "start", "sigterm"]
    for index, action in enumerate(actions):
        await stage.at(3 + 3 * index)
        alive = stage.system.alive("workers")
        if action == "start":
            extra += 1
            await stage.system.start(f"workers-{extra}")
        elif len(alive) > 1:
            victim = stage.rng.choice(alive)
            if action == "kill":
                await stage.system.kill(victim)
            else:
                stage.system.terminate(victim)
    stage.windows.append((begun, time.time()))


async def db_outage(stage: Stage, at: float = 8, seconds: float = 30) -> None:
    """PostgreSQL stopped (fast shutdown) for ``seconds``, then started on the same port and data."""
    await stage.at(at)
    begun = time.time()
    await stage.deps.postgres.stop()
    await stage.at(at + seconds)
    await stage.deps.postgres.start()
    stage.windows.append((begun, time.time()))


async def broker_outage(stage: Stage, at: float = 8, seconds: float = 30) -> None:
    await stage.at(at)
    begun = time.time()
    stage.deps.broker.freeze()
    try:
        await stage.at(at + seconds)
    finally:
        stage.deps.broker.thaw()
    stage.windows.append((begun, time.time()))


async def api_outage(stage: Stage, at: float = 8, seconds: float = 20) -> None:
    """The api killed (kill -9) and started again ``seconds`` later on its port."""
    await stage.at(at)
    begun = time.time()
    await stage.system.kill("api")
    await stage.at(at + seconds)
    await stage.system.start("api")
    stage.windows.append((begun, time.time()))


async def slow_api(stage: Stage, delay_seconds: float = 2.0) -> None:
    """Every answer of the api delayed by ``delay_seconds`` (beyond ingest's ``API_TIMEOUT``) in two spells."""
    assert stage.proxy is not None, "slow-api needs the delay proxy"
    for start, end in ((8, 18), (24, 32)):
        await stage.at(start)
        begun = time.time()
        stage.proxy.delay_seconds = delay_seconds
        await stage.at(end)
        stage.proxy.delay_seconds = 0.0
        stage.windows.append((begun, time.time()))


def poison_records(run: str) -> list[tuple[str, str, bytes, str]]:
    """(logical topic, key, value, expected dlq.reason): bad JSON, a wrong schema, an unknown order."""
    unknown = OrderWebhook(provider_event_id=f"poison_{run}", order_id=f"no_such_order_{run}", user_id="x",
                           status="paid", amount=1, currency="EUR", occurred_at=dt.datetime.now(dt.UTC))
    trace = TraceContext.from_header(None)
    envelope = encode_json(build_envelope(unknown, dt.datetime.now(dt.UTC), "chaos-poison", trace))
    records = []
    for topic in (ORDERS, DISPUTES):
        records += [(topic, f"poison-{topic}-json", b"{not json", "schema"),
                    (topic, f"poison-{topic}-schema", b'{"event_id": "x", "data": {"status": 7}}', "schema")]
    records.append((ORDERS, f"poison-{run}-unknown-order", envelope, "not_found"))
    return records


def _produce(bootstrap: str, prefix: str, records: list[tuple[str, str, bytes, str]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for topic, key, value, _ in records:  # headers as a stray producer might set them: only an event type
        producer.produce(prefix + topic, value, key.encode(), headers=[("event_type", b"order.payment_updated")])
    if producer.flush(30):
        raise RuntimeError("poison records were not acknowledged by the broker")


async def poison(stage: Stage) -> None:
    """Poison records straight onto the topics, mid-stream."""
    await stage.at(5)
    records = poison_records(stage.topic_prefix.rstrip("."))
    await trio.to_thread.run_sync(_produce, stage.deps.broker.bootstrap_servers, stage.topic_prefix, records)
    stage.poison.update({key: reason for _, key, _, reason in records})


STORM_ENV = {"WORKER_MAILBOX_SIZE": "8", "WORKER_MAX_BATCH": "4"}

SCENARIOS = (
    Scenario("worker-kill", KAFKA, worker_kill, 40),
    Scenario("rebalance-storm", KAFKA, rebalance_storm, 40, env=STORM_ENV),
    Scenario("db-outage", ALL, db_outage, 48),
    Scenario("broker-outage", KAFKA, broker_outage, 48),
    Scenario("api-outage", SYNC, api_outage, 38),
    Scenario("slow-api", SYNC, slow_api, 40, delayed_api=True),
    Scenario("poison", KAFKA, poison, 20),
)
SCENARIO_NAMES = tuple(scenario.name for scenario in SCENARIOS)
