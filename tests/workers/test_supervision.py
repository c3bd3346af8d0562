"""Crash supervision of a topic's consumer, on trio's autojump clock."""

from __future__ import annotations

import pytest
import trio

from workers.service import RESTART_WINDOW_SECONDS, TooManyRestarts, supervise_topic


class CrashingConsumer:
    """Crashes ``crashes`` times (counted across instances), then runs until stopped."""

    started: list[float] = []

    def __init__(self, crashes: int) -> None:
        self.crashes = crashes

    async def run(self, stop: trio.Event) -> None:
        CrashingConsumer.started.append(trio.current_time())
        if len(CrashingConsumer.started) <= self.crashes:
            raise RuntimeError("a bug in an actor")
        await stop.wait()


async def test_a_crashed_consumer_is_restarted(autojump_clock: trio.abc.Clock) -> None:
    CrashingConsumer.started = []
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(supervise_topic, lambda: CrashingConsumer(crashes=3), "orders.webhooks", 5, stop)
        await trio.sleep(30)
        stop.set()
    assert len(CrashingConsumer.started) == 4  # three crashes, then a consumer that kept running


async def test_too_many_restarts_in_the_window_end_the_process(autojump_clock: trio.abc.Clock) -> None:
    CrashingConsumer.started = []
    with pytest.raises(TooManyRestarts, match="more than 5 restarts"):
        await supervise_topic(lambda: CrashingConsumer(crashes=100), "orders.webhooks", 5, trio.Event())
    assert len(CrashingConsumer.started) == 6
    assert CrashingConsumer.started[-1] - CrashingConsumer.started[0] < RESTART_WINDOW_SECONDS


async def test_restarts_spread_over_time_are_tolerated(autojump_clock: trio.abc.Clock) -> None:
    """Crashes further apart than the window never add up to the limit."""
    CrashingConsumer.started = []

    class SlowCrasher(CrashingConsumer):
        async def run(self, stop: trio.Event) -> None:
            await trio.sleep(RESTART_WINDOW_SECONDS / 2)  # runs a while before each crash
            await super().run(stop)

    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(supervise_topic, lambda: SlowCrasher(crashes=12), "orders.webhooks", 5, stop)
        await trio.sleep(RESTART_WINDOW_SECONDS * 8)
        stop.set()
    assert len(CrashingConsumer.started) == 13
