"""Applying internal updates: the one path behind HTTP (JSON, Protobuf) and gRPC.

Routes an update to its user's shard, through the shard's writer actor (or, with
``API_WRITER=direct``, one transaction per request), and turns a rejecting
outcome into the matching error of ``shared.errors``.
"""

from __future__ import annotations

from collections.abc import Sequence

from api.shard_writer import API_POLICY, ShardWriter
from shared.database import Database
from shared.domain import OUTCOME_ERRORS, SUCCESSFUL, Outcome
from shared.errors import InvalidInput
from shared.messages import DisputeUpdate, Update
from shared.shard_applier import ShardApplier
from shared.shard_routing import home_shard, refine_not_found


class UpdateApplier:
    def __init__(self, database: Database, writers: Sequence[ShardWriter] | None) -> None:
        self._database = database
        self._writers = writers
        self._direct = ShardApplier(database, API_POLICY)

    async def apply(self, update: Update) -> Outcome:
        """The outcome (applied or stale), or the error the outcome stands for."""
        shard = home_shard(self._database, update)
        if self._writers is not None:
            outcome = await self._writers[shard].submit(update)
        else:
            (outcome,) = await self._direct.apply(shard, [update])
        if not isinstance(outcome, Outcome):  # REFUSED, the one outcome that is a plain str
            raise InvalidInput("the database refused the update's data")
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
