"""``group_settled``: the one reading of "no rebalance under way" shared by the soak, the workers
bench and the storm test."""

from __future__ import annotations

from webhooks.bench.stack import assigned_partitions, group_settled


def _metrics(orders: int, disputes: int) -> str:
    return (f'worker_assigned_partitions{{topic="p.orders"}} {orders}.0\n'
            f'worker_assigned_partitions{{topic="p.disputes"}} {disputes}.0\n'
            f'worker_paused_partitions{{topic="p.orders"}} 9.0\n')


def test_settled_needs_every_worker_to_own_some_and_all_of_them_together() -> None:
    joining, others = _metrics(0, 0), _metrics(6, 6)
    assert assigned_partitions(others) == 12 and assigned_partitions(others, "p.disputes") == 6
    assert group_settled([others], "p.orders", 6) and group_settled([others], None, 12)
    assert not group_settled([others, joining], None, 12)  # a worker that has just joined owns nothing yet
    split = [_metrics(3, 0), _metrics(3, 6)]
    assert group_settled(split, None, 12) and group_settled(split, "p.orders", 6)
    assert not group_settled(split, "p.disputes", 6)  # per topic: the first owns none of the disputes
    assert not group_settled([_metrics(3, 3)], None, 12)  # partitions nobody owns
    assert not group_settled([], None, 0)
