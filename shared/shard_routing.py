"""Routing updates to their user's shard, and telling "not found" from "wrong user".

An update goes to ``shard_for(update.user_id)``. If its order is not there, the
update may carry another user's id: the order then lives on that user's shard.
Only on this rare path are the other shards asked, so a user mismatch is reported
as such (422 / DLQ ``user_mismatch``) instead of as not found.
"""

from __future__ import annotations

from functools import partial

from shared.database import Database
from shared.domain import Outcome
from shared.messages import Update
from shared.repository import entity_exists
from shared.sharding import shard_for


def home_shard(database: Database, update: Update) -> int:
    return shard_for(update.user_id, database.shard_count)


async def refine_not_found(database: Database, update: Update) -> Outcome:
    """NOT_FOUND, or USER_MISMATCH when another shard holds the update's order or dispute."""
    home = home_shard(database, update)
    found_elsewhere = False

    async def ask(shard: int) -> None:
        nonlocal found_elsewhere
        found_elsewhere |= await database.run(shard, entity_exists, update)

    await database.run_on_shards({shard: partial(ask, shard) for shard in range(database.shard_count)
                                  if shard != home})
    return Outcome.USER_MISMATCH if found_elsewhere else Outcome.NOT_FOUND
