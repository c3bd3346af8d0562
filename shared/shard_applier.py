"""Applying a batch of updates to one shard: the one path behind the api's writers and the workers.

- The batch is one ``apply_batch`` (two round trips when no other writer touches its rows) and
  one trio↔asyncio crossing.
- An update PostgreSQL refuses (it passed our schema, not the database's: ``DataError``)
  must not fail the unrelated updates batched with it: the batch is applied again one
  update at a time, in order, and only the refused one is ``REFUSED``.
- A shard that is down, or a batch that overruns ``timeout_seconds``, is a transient
  failure: with a ``backoff`` it is retried in place for as long as it takes (the
  workers: never skip, never dead-letter because a dependency is down); without one it
  raises ``Unavailable`` at once (the api: its caller answers 503 and retries).
- The not-found policy is the caller's: ``defer_after_not_found`` (the workers' retry
  lanes) makes a user's events after a not-found one ``DEFERRED``, untried.
"""

from __future__ import annotations

from collections.abc import Callable
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

log = get_logger(__name__)
REFUSED = "refused"  # PostgreSQL refused the update's data: it passed our schema but not the database's


@dataclass(frozen=True)
class ApplyPolicy:
    defer_after_not_found: bool
    timeout_seconds: float
    backoff: JitteredBackoff | None = None  # None: a transient failure raises at once


class ShardApplier:
    def __init__(self, database: Database, policy: ApplyPolicy,
                 on_retry: Callable[[tenacity.RetryCallState], None] | None = None) -> None:
        self._database = database
        self._policy = policy
        self._on_retry = on_retry

    async def apply(self, shard: int, updates: list[Update]) -> list[Outcome | str]:
        """One outcome (or ``REFUSED``) per update, in order."""
        try:
            return list(await self._transaction(shard, updates))
        except asyncpg.DataError as error:
            if len(updates) == 1:
                log.warning("the database refused an update", shard=shard, error=str(error),
                            correlation_id=updates[0].correlation_id)
                return [REFUSED]
        return await self._one_at_a_time(shard, updates)

    async def _one_at_a_time(self, shard: int, updates: list[Update]) -> list[Outcome | str]:
        """Isolate the refused update; a user's later events still wait behind a not-found one."""
        outcomes: list[Outcome | str] = []
        waiting: set[str] = set()
        for update in updates:
            if self._policy.defer_after_not_found and update.user_id in waiting:
                outcomes.append(Outcome.DEFERRED)
                continue
            (outcome,) = await self.apply(shard, [update])
            if outcome is Outcome.NOT_FOUND:
                waiting.add(update.user_id)
            outcomes.append(outcome)
        return outcomes

    async def _transaction(self, shard: int, updates: list[Update]) -> list[Outcome]:
        if self._policy.backoff is None:
            return await self._run(shard, updates)
        return await patiently(self._run, shard, updates, wait=self._policy.backoff, on_retry=self._on_retry)

    async def _run(self, shard: int, updates: list[Update]) -> list[Outcome]:
        try:
            with trio.fail_after(self._policy.timeout_seconds):
                return await self._database.run(shard, apply_batch, updates, self._policy.defer_after_not_found)
        except trio.TooSlowError:
            raise DatabaseUnavailable("the shard did not answer in time") from None
