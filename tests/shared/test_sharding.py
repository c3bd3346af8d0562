import collections

import pytest

from shared.sharding import jump_hash, shard_for


def test_stable_known_values() -> None:
    """Pinned: a change here would move every user's data to another shard."""
    assert [shard_for(f"user-{i}", 2) for i in range(10)] == [0, 0, 0, 0, 0, 1, 0, 1, 0, 0]
    assert [shard_for(f"user-{i}", 4) for i in range(10)] == [0, 2, 0, 3, 3, 1, 2, 1, 2, 0]


def test_spread_is_even() -> None:
    counts = collections.Counter(shard_for(f"u{i}", 4) for i in range(20_000))
    assert all(4_500 < count < 5_500 for count in counts.values())


def test_growing_moves_few_users() -> None:
    moved = sum(shard_for(f"u{i}", 4) != shard_for(f"u{i}", 5) for i in range(10_000))
    assert 1_500 < moved < 2_500  # about 1/5


def test_bounds() -> None:
    assert all(0 <= jump_hash(key, 3) < 3 for key in range(1000))
    with pytest.raises(ValueError):
        jump_hash(1, 0)
