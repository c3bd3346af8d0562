"""Applying a partition's batch to the shards, patiently: a thin caller of ``ShardApplier``.

The batch is split by the users' shards and each part goes through the shard
applier (one batch write, a refused update isolated), the parts concurrently: a
user lives on one shard, so each user's events stay in order. A shard that is down
is retried in place for as long as it takes — events are never dead-lettered or
skipped because a dependency is down. An event whose order is not known yet is
``NOT_FOUND`` and its user's later events ``DEFERRED``: the partition actor retries
them in that user's lane. A dispute that names only a provider's payment is resolved
through the payment's link first (``shared.payment_links``): without one it is
``NOT_FOUND`` too (that payment's later events ``DEFERRED``), and an applied payment
event records its link before its offset can be committed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import tenacity
import trio

from shared.database import Database
from shared.domain import Outcome
from shared.logs import get_logger
from shared.messages import InboundUpdate, PaymentDisputeUpdate, Update
from shared.payment_links import PaymentLinks, linkable
from shared.retry_policy import JitteredBackoff, patiently
from shared.shard_applier import ApplyPolicy, ShardApplier
from shared.shard_routing import home_shard, refine_not_found
from workers.metrics import RETRIES

log = get_logger(__name__)


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
        self._backoff = JitteredBackoff(config.backoff_base_seconds, config.backoff_max_seconds,
                                        rng=rng or random.Random())
        policy = ApplyPolicy(defer_after_not_found=True, timeout_seconds=config.batch_timeout_seconds,
                             backoff=self._backoff)
        self._applier = ShardApplier(database, policy, on_retry=self.note_retry)
        self._links = PaymentLinks(database)

    async def apply(self, inbound: list[InboundUpdate]) -> list[Outcome | str]:
        """One outcome (or ``shared.shard_applier.REFUSED``) per update."""
        resolved = await patiently(self._links.resolve, inbound, wait=self._backoff, on_retry=self.note_retry)
        outcomes: list[Outcome | str] = [Outcome.APPLIED] * len(inbound)
        parts: dict[int, list[int]] = {}
        unlinked: set[str] = set()  # payments whose dispute was not found: their later events wait behind it
        for index, (original, update) in enumerate(zip(inbound, resolved, strict=True)):
            if update is None:
                assert isinstance(original, PaymentDisputeUpdate)  # only these are ever unresolved
                payment = original.provider_payment_id
                outcomes[index] = Outcome.DEFERRED if payment in unlinked else Outcome.NOT_FOUND
                unlinked.add(payment)
            else:
                parts.setdefault(home_shard(self._database, update), []).append(index)
        updates = [update for update in resolved if update is not None]

        async def apply_part(shard: int, indices: list[int]) -> None:
            part_outcomes = await self._applier.apply(shard, [_known(resolved[i]) for i in indices])
            for index, outcome in zip(indices, part_outcomes, strict=True):
                outcomes[index] = outcome

        async with trio.open_nursery() as nursery:
            for shard, indices in parts.items():
                nursery.start_soon(apply_part, shard, indices)
        links = linkable(updates, [o for o, u in zip(outcomes, resolved, strict=True) if u is not None])
        if links:
            await patiently(self._links.record, links, wait=self._backoff, on_retry=self.note_retry)
        return outcomes

    async def refine_not_found(self, inbound: InboundUpdate) -> Outcome:
        """NOT_FOUND, or USER_MISMATCH when another shard holds the update's order."""
        (update,) = await patiently(self._links.resolve, [inbound], wait=self._backoff, on_retry=self.note_retry)
        if update is None:
            return Outcome.NOT_FOUND  # the payment is still unknown: no order to tell a mismatch by
        return await patiently(refine_not_found, self._database, update, wait=self._backoff,
                               on_retry=self.note_retry)

    def note_retry(self, state: tenacity.RetryCallState) -> None:
        """Count and log a retry (also used for dead-letter sends)."""
        RETRIES.labels(self._topic).inc()
        error = state.outcome.exception() if state.outcome else None
        log.warning("dependency down; retrying in place", topic=self._topic, attempt=state.attempt_number,
                    error=str(error))


def _known(update: Update | None) -> Update:
    assert update is not None, "only resolved updates are routed to a shard"
    return update
