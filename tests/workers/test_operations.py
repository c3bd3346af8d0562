"""Operator commands: dead letters listed and replayed; scaling on a broker that cannot."""

from __future__ import annotations

import os
import sys

import trio

from shared.settings import Settings
from tests.processes import running_service
from tests.workers.conftest import Shards, order_event, produce, wait_until
from tests.workers.test_workers import _dlq_at_least
from webhooks.dlq import describe, read_letters, replay


async def test_a_not_found_event_is_replayed_once_its_order_exists(
        settings: Settings, service_env: dict[str, str], topics: None, shards: Shards) -> None:
    early = order_event("user-late", "paid", 1)  # its order is created only later
    with trio.fail_after(90):
        async with running_service("workers", service_env):
            await trio.to_thread.run_sync(produce, settings, [early])
            await wait_until(lambda: _dlq_at_least(settings, 1), "the event is dead-lettered")
            letters = await trio.to_thread.run_sync(lambda: list(read_letters(settings, reason="not_found")))
            assert len(letters) == 1 and "reason=not_found" in describe(letters[0])
            assert await trio.to_thread.run_sync(lambda: list(read_letters(settings, reason="schema"))) == []
            await shards.seed_orders(["user-late"])
            assert await trio.to_thread.run_sync(replay, settings, letters) == 1

            async def applied() -> bool:
                return [r["status"] for r in await shards.fetch("SELECT status FROM orders")] == ["paid"]

            await wait_until(applied, "the replayed event is applied")


async def test_scaling_on_tansu_fails_with_a_clear_message(settings: Settings, topics: None) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "TOPIC_PREFIX": settings.topic_prefix}
    with trio.fail_after(60):
        result = await trio.run_process([sys.executable, "-m", "webhooks", "topics", "scale", "--partitions", "12"],
                                        env=env, capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 1
    assert b"lacks CreatePartitions" in result.stderr
