"""The per-shard writer actor: concurrent updates become one batch write.

Handlers ``submit`` an update and wait for its outcome; the actor takes whatever
has queued up (up to ``max_batch``), applies it through the ``ShardApplier`` (two
round trips when no other writer touches its rows, ``shared.repository``, and one
trio↔asyncio crossing; an update PostgreSQL refuses is isolated, so it cannot fail
the unrelated requests batched with it), and answers each caller on its own one-shot
channel. Throughput is then batches per second × batch size instead of one write per
request. A shard that is down fails the batch at
once (503 to each caller; ingest retries): requests are not held in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from shared.database import Database
from shared.domain import Outcome
from shared.errors import Unavailable
from shared.logs import get_logger
from shared.messages import Update
from shared.shard_applier import ApplyPolicy, ShardApplier

log = get_logger(__name__)
API_POLICY = ApplyPolicy(defer_after_not_found=False, timeout_seconds=10.0)


@dataclass(frozen=True)
class _Request:
    updates: tuple[Update, ...]  # one webhook's, or a batch call's from ingest: answered together
    reply: trio.MemorySendChannel[list[Outcome | str] | Exception]


@dataclass(frozen=True)
class WriterStatistics:
    queued: int
    batches: int
    max_batch_seen: int


class ShardWriter:
    def __init__(self, database: Database, shard: int, *, max_batch: int = 256) -> None:
        self._applier = ShardApplier(database, API_POLICY)
        self._shard = shard
        self._max_batch = max_batch
        self._send, self._receive = trio.open_memory_channel[_Request](max_batch * 4)
        self._batches = 0
        self._max_batch_seen = 0

    async def submit(self, update: Update) -> Outcome | str:
        """Queue ``update`` and wait for its outcome, or ``REFUSED`` (the caller owns the deadline)."""
        (result,) = await self.submit_many((update,))
        return result

    async def submit_many(self, updates: tuple[Update, ...]) -> list[Outcome | str]:
        """Queue ``updates`` as one request (one message, one reply) and wait for their outcomes, in order."""
        reply_send, reply_receive = trio.open_memory_channel[list[Outcome | str] | Exception](1)
        async with reply_receive:
            await self._send.send(_Request(updates, reply_send))
            result = await reply_receive.receive()
        if isinstance(result, Exception):
            raise result
        return result

    def statistics(self) -> WriterStatistics:
        return WriterStatistics(self._send.statistics().current_buffer_used, self._batches, self._max_batch_seen)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The actor loop; ends when cancelled by its owner."""
        task_status.started()
        async with self._receive:
            async for first in self._receive:
                batch = [first, *self._take_queued(len(first.updates))]
                results = await self._apply(batch)
                for request, result in zip(batch, results, strict=True):
                    with request.reply:
                        try:
                            request.reply.send_nowait(result)
                        except trio.BrokenResourceError:
                            pass  # the caller gave up (its deadline); the outcome stands in the database

    def _take_queued(self, size: int) -> list[_Request]:
        """Requests queued behind the first, until the batch holds ``max_batch`` updates (the last may overshoot)."""
        taken: list[_Request] = []
        while size < self._max_batch:
            try:
                request = self._receive.receive_nowait()
            except trio.WouldBlock:
                break
            taken.append(request)
            size += len(request.updates)
        return taken

    async def _apply(self, batch: list[_Request]) -> list[list[Outcome | str] | Exception]:
        updates = [update for request in batch for update in request.updates]
        self._batches += 1
        self._max_batch_seen = max(self._max_batch_seen, len(updates))
        try:
            outcomes = await self._applier.apply(self._shard, updates)
        except Unavailable as exc:
            error: Exception = exc
        except Exception as exc:  # noqa: BLE001 - a bug must reach the callers, not kill the actor
            log.exception("batch failed", shard=self._shard, size=len(updates))
            error = exc
        else:
            answers: list[list[Outcome | str] | Exception] = []
            for request in batch:
                answers.append(outcomes[:len(request.updates)])
                del outcomes[:len(request.updates)]
            return answers
        return [error] * len(batch)
