"""Which order a payment is linked to: the first one, however its events are batched."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from shared.domain import Outcome
from shared.payment_links import PaymentLinks, linkable
from tests.api.updates import at, order_update


class RecordingDatabase:
    """Records the rows each insert would write (the SQL keeps the first row per payment ever)."""

    shard_count = 2

    def __init__(self) -> None:
        self.inserted: list[tuple[str, str, str]] = []

    async def run(self, shard: int, work: Callable[..., Awaitable[Any]], rows: list[tuple[str, str, str]]) -> None:
        self.inserted += rows

    async def run_on_shards(self, calls: Mapping[int, Callable[[], Awaitable[object]]]) -> None:
        for call in calls.values():
            await call()


async def test_the_first_order_of_a_batch_is_the_payments_link() -> None:
    database = RecordingDatabase()
    first = order_update("A", "u1", "paid", at(1), provider_payment_id="pi_1")
    second = order_update("B", "u2", "paid", at(2), provider_payment_id="pi_1")  # metadata changed meanwhile
    await PaymentLinks(database).record([first, second])  # type: ignore[arg-type]
    assert database.inserted == [("pi_1", "A", "u1")]


def test_an_invalid_transition_still_proves_the_order_is_the_users() -> None:
    """Judged after the user check: the payment may be linked, so its disputes can find the order."""
    refused = order_update("A", "u1", "pending", at(1), provider_payment_id="pi_1")
    mismatch = order_update("A", "intruder", "paid", at(1), provider_payment_id="pi_2")
    assert linkable([refused, mismatch], [Outcome.INVALID_TRANSITION, Outcome.USER_MISMATCH]) == [refused]


async def test_no_payment_no_database_work() -> None:
    database = RecordingDatabase()
    with trio.fail_after(1):
        assert await PaymentLinks(database).find([]) == {}  # type: ignore[arg-type]
    assert database.inserted == []
