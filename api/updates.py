"""Applying internal updates: the one path behind HTTP (JSON, Protobuf) and gRPC.

Routes an update to its user's shard, through the shard's writer actor (or, with
``API_WRITER=direct``, one transaction per request), and turns a rejecting
outcome into the matching error of ``shared.errors``. A dispute named only by its
payment (Stripe) is first resolved through the payment's link (``shared.payment_links``):
no link yet is not found (404; the provider retries), never a guessed order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import trio

from api.shard_writer import API_POLICY, ShardWriter
from shared.database import Database
from shared.domain import OUTCOME_ERRORS, SUCCESSFUL, Outcome
from shared.errors import DatabaseUnavailable, InvalidInput, NotFound, WebhookError
from shared.messages import DisputeUpdate, InboundUpdate, PaymentDisputeUpdate, Update
from shared.payment_links import PaymentLinks, linkable
from shared.shard_applier import ShardApplier
from shared.shard_routing import home_shard, refine_not_found


class UpdateApplier:
    def __init__(self, database: Database, writers: Sequence[ShardWriter] | None,
                 shard_deadline_seconds: float = 7.5) -> None:
        """``shard_deadline_seconds``: how long a batch waits for one shard; below ingest's
        ``API_TIMEOUT`` so that a hung shard's updates are answered 503 (retried) while the
        other shards' stand, instead of the whole call timing out."""
        self._database = database
        self._shard_deadline_seconds = shard_deadline_seconds
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

    async def apply_batch(self, inbound: Sequence[InboundUpdate]) -> list[Outcome | WebhookError]:
        """Each update's outcome or error, as ``apply`` would give it; one request per shard writer.

        The shards are written concurrently; a shard that is down makes its own updates
        ``DatabaseUnavailable`` and leaves the others' outcomes standing. Disputes named by
        their payment are resolved first (one lookup per links shard); unlinked ones are 404."""
        resolved = await self._resolved(inbound)
        answers: list[Outcome | WebhookError | None] = [u if isinstance(u, WebhookError) else None for u in resolved]
        updates = {index: u for index, u in enumerate(resolved) if not isinstance(u, WebhookError)}
        by_shard: dict[int, list[int]] = {}
        for index, update in updates.items():
            by_shard.setdefault(home_shard(self._database, update), []).append(index)

        async def apply_shard(shard: int, indexes: list[int]) -> None:
            outcomes: Sequence[Outcome | str | WebhookError]
            with trio.move_on_after(self._shard_deadline_seconds):
                try:
                    outcomes = await self._on_shard(shard, tuple(updates[i] for i in indexes))
                except WebhookError as error:  # the shard is down: every update of it
                    outcomes = [error] * len(indexes)
                for index, outcome in zip(indexes, outcomes, strict=True):
                    answers[index] = outcome if isinstance(outcome, WebhookError) else await self._answer(
                        outcome, updates[index])
            late = DatabaseUnavailable(f"shard{shard} did not answer within {self._shard_deadline_seconds:g} s")
            for index in indexes:  # a hung shard answers 503 for its own updates, in time for the caller
                if answers[index] is None:
                    answers[index] = late

        async with trio.open_nursery() as nursery:
            for shard, indexes in by_shard.items():
                nursery.start_soon(apply_shard, shard, indexes)
        assert all(answer is not None for answer in answers), "every update is answered"
        return cast(list[Outcome | WebhookError], answers)

    async def _resolved(self, updates: Sequence[InboundUpdate]) -> list[Update | WebhookError]:
        """Each update as it is applied: a dispute named by its payment becomes its order's, or
        ``NotFound`` while the payment has no link (the lookup's own error, for those alone, if
        the links' shard is down)."""
        if not any(isinstance(u, PaymentDisputeUpdate) for u in updates):
            return list(cast(Sequence[Update], updates))
        failure: WebhookError | None = None
        try:
            resolved = await self._links.resolve(updates)
        except* WebhookError as group:  # one error, or a group if raised out of a nursery
            failure = _first_error(group)
        if failure is not None:
            return [failure if isinstance(u, PaymentDisputeUpdate) else u for u in updates]
        return [r if r is not None else _unlinked(u) for u, r in zip(updates, resolved, strict=True)]

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


def _first_error(group: BaseExceptionGroup[WebhookError]) -> WebhookError:
    first = group.exceptions[0]
    return _first_error(first) if isinstance(first, BaseExceptionGroup) else first


def _unlinked(update: InboundUpdate) -> NotFound:
    assert isinstance(update, PaymentDisputeUpdate), "only disputes named by their payment are ever unresolved"
    return NotFound(f"payment {update.provider_payment_id} of dispute {update.dispute_id} is not linked to an order "
                    "(none of its payment events was applied yet)")


def _detail(outcome: Outcome, update: Update) -> str:
    entity = f"dispute {update.dispute_id}" if isinstance(update, DisputeUpdate) else f"order {update.order_id}"
    return {
        Outcome.DUPLICATE: f"event {update.provider_event_id} of {entity} was already received",
        Outcome.NOT_FOUND: f"{entity} not found" + (" (a new dispute must start with 'opened' on an existing order)"
                                                    if isinstance(update, DisputeUpdate) else ""),
        Outcome.INVALID_TRANSITION: f"{entity} cannot move to '{update.status}' from its current status",
        Outcome.USER_MISMATCH: f"{entity} does not belong to user {update.user_id}",
    }[outcome]
