"""Which shard holds a user's data: one function, used by every path.

``shard_for(user_id, shard_count)`` hashes the user id (BLAKE2b, stable across
processes and Python versions, unlike ``hash()``) and maps it with Jump
Consistent Hash (Lamping & Veach, 2014): growing from N to N+1 shards moves only
~1/(N+1) of users. It knows nothing of Kafka partitions, so adding partitions never
moves a user's data.
"""

from __future__ import annotations

import hashlib

_MASK64 = (1 << 64) - 1


def user_key(user_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(user_id.encode(), digest_size=8).digest(), "big")


def jump_hash(key: int, buckets: int) -> int:
    """Jump Consistent Hash: a bucket in [0, buckets) for a 64-bit key."""
    if buckets < 1:
        raise ValueError("buckets must be ≥ 1")
    bucket, candidate = -1, 0
    while candidate < buckets:
        bucket = candidate
        key = (key * 2862933555777941757 + 1) & _MASK64
        candidate = int((bucket + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return bucket


def shard_for(user_id: str, shard_count: int) -> int:
    return jump_hash(user_key(user_id), shard_count)
