"""Applying a partition's batch to the shards, patiently.

The batch is split by the users' shards and each part is applied in one
transaction (``apply_batch``), the parts concurrently: a user lives on one shard,
so each user's events stay in order. A shard that is down is retried in place with
capped exponential backoff and jitter, for as long as it takes — events are never
dead-lettered or skipped because a dependency is down. An event whose order is not
known yet is reported ``NOT_FOUND`` and its user's later events ``DEFERRED`` (not
tried): the partition actor retries them in that user's lane.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import asyncpg
import tenacity
import trio

from shared.database import Database
from shared.domain import Outcome
from shared.errors import DatabaseUnavailable
from shared.logs import get_logger
from shared.messages import Update
from shared.repository import apply_batch
from shared.retry_policy import JitteredBackoff, patiently
from shared.shard_routing import home_shard, refine_not_found
from workers.metrics import RETRIES

log = get_logger(__name__)
REFUSED = "refused"  # PostgreSQL refused the event's data: it passed our schema but not the database's


@dataclass(frozen=True)
class WriterConfig:
    batch_timeout_seconds: float = 30.0  # a shard that does not answer in time counts as down
    backoff_base_seconds: float = 0.1
    backoff_max_seconds: float = 5.0


class ShardedBatchWriter:
    def __init__(self, database: Database, topic: str, config: WriterConfig = WriterConfig(),
                 rng: random.Random | None = None) -> None:
        self._database = database
        self._topic = topic
        self._config = config
        self._backoff = JitteredBackoff(config.backoff_base_seconds, config.backoff_max_seconds,
                                        rng=rng or random.Random())

    async def apply(self, updates: list[Update]) -> list[Outcome | str]:
        """One outcome (or ``REFUSED``) per update."""
        outcomes: list[Outcome | str] = [Outcome.APPLIED] * len(updates)
        parts: dict[int, list[int]] = {}
        for index, update in enumerate(updates):
            parts.setdefault(home_shard(self._database, update), []).append(index)

        async def apply_part(shard: int, indices: list[int]) -> None:
            part_outcomes = await self._apply_part(shard, [updates[i] for i in indices])
            for index, outcome in zip(indices, part_outcomes, strict=True):
                outcomes[index] = outcome

        async with trio.open_nursery() as nursery:
            for shard, indices in parts.items():
                nursery.start_soon(apply_part, shard, indices)
        return outcomes

    async def refine_not_found(self, update: Update) -> Outcome:
        """NOT_FOUND, or USER_MISMATCH when another shard holds the update's order."""
        return await self._patiently(refine_not_found, self._database, update)

    async def _apply_part(self, shard: int, updates: list[Update]) -> list[Outcome | str]:
        """The part in one transaction; if the database refuses some event's data, every event of
        the part on its own, in order, so that one refused event cannot hold the others back."""
        try:
            return list(await self._patiently(self._run, shard, updates))
        except asyncpg.DataError as error:
            if len(updates) == 1:
                log.warning("the database refused an event", shard=shard, error=str(error),
                            correlation_id=updates[0].correlation_id)
                return [REFUSED]
        outcomes: list[Outcome | str] = []
        waiting: set[str] = set()  # users whose earlier event was not found: theirs wait (per-user order)
        for update in updates:
            if update.user_id in waiting:
                outcomes.append(Outcome.DEFERRED)
                continue
            (outcome,) = await self._apply_part(shard, [update])
            if outcome is Outcome.NOT_FOUND:
                waiting.add(update.user_id)
            outcomes.append(outcome)
        return outcomes

    async def _run(self, shard: int, updates: list[Update]) -> list[Outcome]:
        try:
            with trio.fail_after(self._config.batch_timeout_seconds):
                return await self._database.run(shard, apply_batch, updates, True)
        except trio.TooSlowError:
            raise DatabaseUnavailable("the shard did not answer in time") from None

    async def _patiently(self, function, *args):  # noqa: ANN001, ANN202
        return await patiently(function, *args, wait=self._backoff, on_retry=self.note_retry)

    def note_retry(self, state: tenacity.RetryCallState) -> None:
        """Count and log a retry (also used for dead-letter sends)."""
        RETRIES.labels(self._topic).inc()
        error = state.outcome.exception() if state.outcome else None
        log.warning("dependency down; retrying in place", topic=self._topic, attempt=state.attempt_number,
                    error=str(error))
