"""``webhooks dlq replay`` reports every letter the broker did not take, and exits 1 if there was one."""

from __future__ import annotations

import os
import sys

import pytest
import trio
from confluent_kafka import Producer

from shared.settings import Settings
from shared.topics import ALL_TOPICS, DLQ_SUFFIX, ORDERS, admin_client, create_topics
from tests.frozen_broker import read_values
from webhooks.dlq import Letter, ReplayIncomplete, read_letters, replay


@pytest.fixture
async def topics(settings: Settings) -> None:
    await trio.to_thread.run_sync(create_topics, admin_client(settings.kafka_bootstrap_servers),
                                  [settings.topic(t) for t in ALL_TOPICS], settings.topic_partitions)


def _headers(original_topic: str | None) -> list[tuple[str, bytes]]:
    headers = [("event_type", b"order.payment_updated"), ("dlq.reason", b"not_found"), ("dlq.error", b"unknown")]
    return headers + ([("dlq.original.topic", original_topic.encode())] if original_topic is not None else [])


def _dead_letters(settings: Settings, letters: list[tuple[bytes, str | None]]) -> None:
    """``(key, original topic)`` pairs to the orders DLQ, in one batch per partition (linger)."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, "linger.ms": 50})
    for key, original_topic in letters:
        producer.produce(settings.topic(ORDERS) + DLQ_SUFFIX, b'{"event": 1}', key, partition=0,
                         headers=_headers(original_topic))
    assert producer.flush(10) == 0


def _letter(offset: int, original_topic: str | None, value: bytes = b"{}") -> Letter:
    return Letter("orders.webhooks.DLQ", 0, offset, b"usr_1", value, _headers(original_topic))


async def test_replay_names_each_letter_the_broker_refused_and_sends_the_others(
        settings: Settings, topics: None) -> None:
    orders = settings.topic(ORDERS)
    letters = [_letter(1, orders), _letter(2, None), _letter(3, orders, b"x" * 2_000_000), _letter(4, orders)]
    with trio.fail_after(60):
        with pytest.raises(ReplayIncomplete) as incomplete:
            await trio.to_thread.run_sync(replay, settings, letters)
        replayed = await trio.to_thread.run_sync(read_values, settings.kafka_bootstrap_servers, orders,
                                                 settings.topic_partitions)
    assert incomplete.value.replayed == 2 and len(replayed) == 2  # not from watermarks: tansu's undercount
    assert [failure.letter.offset for failure in incomplete.value.failures] == [2, 3]
    message = str(incomplete.value)
    assert message.startswith("replayed 2 of 4 dead letters; 2 failed:")
    assert "orders.webhooks.DLQ[0]@2 -> (no dlq.original.topic header): " in message  # a delivery report's error
    assert f"orders.webhooks.DLQ[0]@3 -> {orders}: refused: " in message and "too large" in message


async def test_every_letter_is_read_past_a_stale_watermark(settings: Settings, topics: None) -> None:
    """tansu reports a partition's high watermark as its last batch's base offset + 1: 1 here."""
    count = 1200  # more than one consume() call returns
    with trio.fail_after(60):
        await trio.to_thread.run_sync(_dead_letters, settings, [(b"usr_%d" % n, settings.topic(ORDERS))
                                                                 for n in range(count)])
        letters = await trio.to_thread.run_sync(lambda: list(read_letters(settings)))
    assert [letter.key for letter in letters] == [b"usr_%d" % n for n in range(count)]


async def _cli(settings: Settings, *args: str) -> trio.CompletedProcess:  # type: ignore[type-arg]
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "TOPIC_PREFIX": settings.topic_prefix, "TOPIC_PARTITIONS": str(settings.topic_partitions)}
    return await trio.run_process([sys.executable, "-m", "webhooks", "dlq", *args], env=env, capture_stdout=True,
                                  capture_stderr=True, check=False)


async def test_the_replay_command_exits_1_and_names_the_failed_letter(settings: Settings, topics: None) -> None:
    with trio.fail_after(90):
        await trio.to_thread.run_sync(_dead_letters, settings, [(b"usr_good", settings.topic(ORDERS)),
                                                                 (b"usr_bad", None)])
        listed = await _cli(settings, "list")
        result = await _cli(settings, "replay")
    assert listed.returncode == 0 and b"2 dead letters" in listed.stdout
    assert result.returncode == 1, (result.stdout, result.stderr)
    stderr = result.stderr.decode()
    assert "replayed 1 of 2 dead letters; 1 failed:" in stderr
    assert f"{settings.topic(ORDERS)}{DLQ_SUFFIX}[" in stderr and "(no dlq.original.topic header)" in stderr


async def test_the_replay_command_exits_0_when_every_letter_was_taken(settings: Settings, topics: None) -> None:
    with trio.fail_after(90):
        await trio.to_thread.run_sync(_dead_letters, settings, [(b"usr_good", settings.topic(ORDERS))])
        result = await _cli(settings, "replay")
    assert result.returncode == 0, result.stderr
    assert b"replayed 1 dead letters" in result.stdout
