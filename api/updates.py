"""Applying internal updates: the one path behind HTTP (JSON, Protobuf) and gRPC.

Routes an update to its user's shard, through the shard's writer actor (or, with
``API_WRITER=direct``, one transaction per request), and turns a rejecting
outcome into the matching error of ``shared.errors``.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from api.shard_writer import API_POLICY, ShardWriter
from shared.database import Database
from shared.domain import OUTCOME_ERRORS, SUCCESSFUL, Outcome
from shared.errors import InvalidInput, WebhookError
from shared.messages import DisputeUpdate, Update
from shared.payment_links import PaymentLinks, linkable
from shared.shard_applier import ShardApplier
from shared.shard_routing import home_shard, refine_not_found


class UpdateApplier:
    def __init__(self, database: Database, writers: Sequence[ShardWriter] | None) -> None:
        self._database = database
        self._writers = writers
        self._direct = ShardApplier(database, API_POLICY)
        self._links = PaymentLinks(database)

    async def apply(self, update: Update) -> Outcome:
        """The outcome (applied or stale), or the error the outcome stands for."""
        shard = home_shard(self._database, update)
        if self._writers is not None:
            outcome = await self._writers[shard].submit(update)
        else:
            (outcome,) = await self._direct.apply(shard, [update])
        return await self._judged(outcome, update)

    async def apply_batch(self, updates: Sequence[Update]) -> list[Outcome | WebhookError]:
        """Each update's outcome or error, as ``apply`` would give it; one request per shard writer.

        The shards are written concurrently; a shard that is down makes its own updates
        ``DatabaseUnavailable`` and leaves the others' outcomes standing."""
        by_shard: dict[int, list[int]] = {}
        for index, update in enumerate(updates):
            by_shard.setdefault(home_shard(self._database, update), []).append(index)
        answers: list[Outcome | WebhookError | None] = [None] * len(updates)

        async def apply_shard(shard: int, indexes: list[int]) -> None:
            outcomes: Sequence[Outcome | str | WebhookError]
            try:
                outcomes = await self._on_shard(shard, tuple(updates[i] for i in indexes))
            except WebhookError as error:  # the shard is down: every update of it
                outcomes = [error] * len(indexes)
            for index, outcome in zip(indexes, outcomes, strict=True):
                answers[index] = outcome if isinstance(outcome, WebhookError) else await self._answer(
                    outcome, updates[index])

        async with trio.open_nursery() as nursery:
            for shard, indexes in by_shard.items():
                nursery.start_soon(apply_shard, shard, indexes)
        return [answer for answer in answers if answer is not None]

    async def _on_shard(self, shard: int, updates: tuple[Update, ...]) -> list[Outcome | str]:
        if self._writers is not None:
            return await self._writers[shard].submit_many(updates)
        return await self._direct.apply(shard, list(updates))

    async def _answer(self, outcome: Outcome | str, update: Update) -> Outcome | WebhookError:
        try:
            return await self._judged(outcome, update)
        except WebhookError as error:
            return error

    async def _judged(self, outcome: Outcome | str, update: Update) -> Outcome:
        """``outcome`` if it is a success, else raised as the error it stands for."""
        if not isinstance(outcome, Outcome):  # REFUSED, the one outcome that is a plain str
            raise InvalidInput("the database refused the update's data")
        if links := linkable([update], [outcome]):  # before answering, so a failure here is retried (5xx)
            await self._links.record(links)
        if outcome is Outcome.NOT_FOUND:
            outcome = await refine_not_found(self._database, update)
        if outcome not in SUCCESSFUL:
            raise OUTCOME_ERRORS[outcome](_detail(outcome, update))
        return outcome


def _detail(outcome: Outcome, update: Update) -> str:
    entity = f"dispute {update.dispute_id}" if isinstance(update, DisputeUpdate) else f"order {update.order_id}"
    return {
        Outcome.DUPLICATE: f"event {update.provider_event_id} of {entity} was already received",
        Outcome.NOT_FOUND: f"{entity} not found" + (" (a new dispute must start with 'opened' on an existing order)"
                                                    if isinstance(update, DisputeUpdate) else ""),
        Outcome.INVALID_TRANSITION: f"{entity} cannot move to '{update.status}' from its current status",
        Outcome.USER_MISMATCH: f"{entity} does not belong to user {update.user_id}",
    }[outcome]
