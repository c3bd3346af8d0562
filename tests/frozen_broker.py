"""A tansu broker of the test's own, to freeze (SIGSTOP) and thaw (SIGCONT) without touching the session's."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio
from confluent_kafka import Consumer, TopicPartition

from webhooks.child_process import ChildProcess, open_child
from webhooks.embedded import accepting, broker_argv, free_port


@dataclass
class OwnBroker:
    process: ChildProcess
    bootstrap_servers: str

    def freeze(self) -> float:
        self.process.send_signal(signal.SIGSTOP)
        return trio.current_time()

    def thaw(self) -> float:
        self.process.send_signal(signal.SIGCONT)
        return trio.current_time()


@asynccontextmanager
async def own_broker() -> AsyncIterator[OwnBroker]:
    """A fresh, memory-only tansu on a free port, thawed and stopped on exit."""
    port = free_port()
    async with open_child(broker_argv(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as process:
        try:
            with trio.fail_after(30):
                while not await accepting(port):
                    await trio.sleep(0.05)
            yield OwnBroker(process, f"127.0.0.1:{port}")
        finally:
            process.send_signal(signal.SIGCONT)  # a stopped broker would not act on SIGTERM


def read_values(bootstrap_servers: str, topic: str, partitions: int, idle_seconds: float = 1.0) -> list[bytes]:
    """Every record value on ``topic``, read until none came for ``idle_seconds`` (blocking: call from a thread).

    Not bounded by watermarks: after a producer is replaced, tansu's ListOffsets can report a stale
    high watermark (the last batch's base offset + 1) while Fetch returns every record.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "tests-frozen-reader",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, partition, 0) for partition in range(partitions)])
    values: list[bytes] = []
    try:
        while messages := consumer.consume(1000, idle_seconds):
            values.extend(message.value() for message in messages if message.error() is None)
    finally:
        consumer.close()
    return values
