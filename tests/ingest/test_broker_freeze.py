"""A broker blip must not take ingest down: freeze a broker of our own (SIGSTOP) for longer than
ingest's delivery timeout, thaw it (SIGCONT), and ingest accepts again within seconds — without
a restart, and without a 202 for any record the broker did not acknowledge.

What tansu 0.6 and librdkafka 2.16 do here (seen with ``debug=eos,protocol``): the requests in
flight time out after the 5 s delivery timeout (``_MSG_TIMED_OUT``, 503); the idempotent
producer then bumps its own epoch (no InitProducerId round trip). Once thawed, tansu answers
every ProduceRequest carrying the bumped epoch with ``PRODUCER_FENCED``, which librdkafka
reports per record as *not* fatal and answers with yet another local bump — so the old
producer never delivers again (it did not in 20 s of trying). A fresh producer works at once.
The test's broker is its own process: the session's broker is shared by every test.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass

import httpx
import trio
import trio_asyncio

from ingest.service import serve_ingest
from shared.secret import SecretBytes
from shared.settings import Settings
from shared.topics import ALL_TOPICS, ORDERS, admin_client, create_topics
from tests.frozen_broker import own_broker, read_values
from tests.webhook_requests import TEST_SECRET, encode, order_webhook, signed_headers

DELIVERY_TIMEOUT_SECONDS = 5.0  # ingest's (ingest/service.py)
FREEZE_SECONDS = DELIVERY_TIMEOUT_SECONDS + 3  # records in flight time out while frozen
RECOVERY_SECONDS = 5.0  # after SIGCONT, every webhook sent later than this is accepted
SEND_INTERVAL_SECONDS = 0.1
PARTITIONS = 3


@dataclass(frozen=True)
class Answer:
    sent_at: float
    answered_at: float
    status: int
    event_id: str | None
    detail: str | None


def _settings(bootstrap: str) -> Settings:
    return Settings(webhook_mode="kafka", kafka_bootstrap_servers=bootstrap, topic_prefix=f"f{uuid.uuid4().hex[:8]}.",
                    topic_partitions=PARTITIONS, webhook_secrets=(SecretBytes(TEST_SECRET),), ingest_port=0)


class Sender:
    """Posts a fresh signed order webhook every ``SEND_INTERVAL_SECONDS``, each in its own task."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.answers: list[Answer] = []

    async def run(self, nursery: trio.Nursery, stop: trio.Event) -> None:
        index = 0
        while not stop.is_set():
            nursery.start_soon(self.post, index)
            index += 1
            await trio.sleep(SEND_INTERVAL_SECONDS)

    async def post(self, index: int) -> None:
        body = encode(order_webhook(user_id=f"usr_{index % 7}", order_id=f"ord_{index % 7}"))
        sent_at = trio.current_time()
        response = await self.client.post("/webhooks/payments/orders", content=body, headers=signed_headers(body))
        answer = response.json()
        self.answers.append(Answer(sent_at, trio.current_time(), response.status_code, answer.get("event_id"),
                                   answer.get("detail")))


async def _metric(client: httpx.AsyncClient, name: str) -> float:
    text = (await client.get("/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


async def test_ingest_accepts_again_within_seconds_after_the_broker_was_frozen() -> None:
    with trio.fail_after(120):
        async with own_broker() as broker:
            bootstrap = broker.bootstrap_servers
            settings = _settings(bootstrap)
            admin = admin_client(bootstrap)
            await trio.to_thread.run_sync(create_topics, admin, [settings.topic(t) for t in ALL_TOPICS], PARTITIONS)
            shutdown = trio.Event()
            async with trio_asyncio.open_loop() as loop, trio.open_nursery() as nursery:
                url = (await nursery.start(serve_ingest, settings, loop, shutdown))[0]
                async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                    recreations_before = await _metric(client, "kafka_producer_recreations_total")
                    sender, stop = Sender(client), trio.Event()
                    async with trio.open_nursery() as posts:
                        posts.start_soon(sender.run, posts, stop)
                        await trio.sleep(1.5)
                        frozen_at = broker.freeze()
                        await trio.sleep(FREEZE_SECONDS)
                        thawed_at = broker.thaw()
                        await trio.sleep(RECOVERY_SECONDS + 3)
                        stop.set()
                    ready = await client.get("/readyz")
                    recreations = await _metric(client, "kafka_producer_recreations_total") - recreations_before
                shutdown.set()
            answers = sorted(sender.answers, key=lambda a: a.sent_at)
            accepted = {a.event_id for a in answers if a.status == 202}
            on_topic = await trio.to_thread.run_sync(_event_ids_on_topic, bootstrap, settings.topic(ORDERS))

    print(_timeline(answers, frozen_at, thawed_at), f"recreations: {recreations}", sep="\n")
    late = [a for a in answers if a.sent_at >= thawed_at + RECOVERY_SECONDS]
    assert {a.status for a in answers} <= {202, 503}
    assert all(a.status == 202 for a in answers if a.sent_at < frozen_at - 0.5), "accepted before the freeze"
    assert late and [a.status for a in late] == [202] * len(late), (
        f"webhooks sent ≥ {RECOVERY_SECONDS} s after SIGCONT: {[a.status for a in late]}")
    assert accepted <= on_topic, f"202 for records not on the topic: {sorted(accepted - on_topic)}"
    assert ready.status_code == 200, ready.text
    assert recreations >= 1


def _timeline(answers: list[Answer], frozen_at: float, thawed_at: float) -> str:
    """What happened, for ``pytest -s``: the 503s by reason, and when the first 503 and the next 202 came."""
    lines = [f"{count:4} x 503 {detail}" for detail, count in
             Counter(a.detail[:100] for a in answers if a.detail).most_common()]
    first_503 = min((a.answered_at - frozen_at for a in answers if a.status == 503), default=None)
    replaced = min((a.answered_at - thawed_at for a in answers if "recreation pending" in (a.detail or "")),
                   default=None)
    first_202 = min((a.answered_at - thawed_at for a in answers if a.status == 202 and a.sent_at >= thawed_at),
                    default=None)
    lines.append(f"{len(answers)} webhooks; first 503 {first_503} s after SIGSTOP; producer replaced {replaced} s "
                 f"and first 202 {first_202} s after SIGCONT")
    return "\n".join(lines)


def _event_ids_on_topic(bootstrap: str, topic: str) -> set[str]:
    return {json.loads(value)["event_id"] for value in read_values(bootstrap, topic, PARTITIONS)}
