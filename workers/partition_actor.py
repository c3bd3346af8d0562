"""One actor per assigned partition: a bounded mailbox in, batches applied in offset order.

The actor takes what has queued in its mailbox (up to ``max_batch``), decodes each
record's envelope, applies the batch through ``ShardedBatchWriter`` and settles every
record: applied, stale and duplicate are done; rejected ones (schema, not found,
invalid transition, user mismatch) go to the topic's DLQ, then are done. Only then
are the offsets marked done, so the committed prefix never passes unsettled work.
The mailbox closing is the signal to finish what is queued and end.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import trio

from shared.domain import OUTCOME_ERRORS, Outcome
from shared.envelope import Envelope
from shared.errors import InvalidInput, mapping_for
from shared.logs import get_logger
from shared.tracing import trace_id
from shared.messages import DisputeUpdate, DisputeWebhook, OrderUpdate, OrderWebhook, Update, validation_error
from workers.batch_writer import REFUSED, ShardedBatchWriter
from workers.metrics import BATCH_SIZE, DEAD_LETTERS, END_TO_END, MAILBOX_DEPTH, OUTCOMES
from workers.offset_tracker import OffsetTracker
from workers.records import DeadLetter, Record, dead_letter

log = get_logger(__name__)
UPDATE_TYPES: dict[type, type[Update]] = {OrderWebhook: OrderUpdate, DisputeWebhook: DisputeUpdate}
_decoders: dict[type, msgspec.json.Decoder[Any]] = {}


def decode_update(value: bytes | None, schema: type) -> Update:
    """The update an envelope carries, or ``InvalidInput`` (a poison record)."""
    decoder = _decoders.get(schema) or _decoders.setdefault(schema, msgspec.json.Decoder(Envelope[schema]))
    try:
        envelope = decoder.decode(value or b"")
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise validation_error(exc) from None
    fields = {name: getattr(envelope.data, name) for name in envelope.data.__struct_fields__}
    return UPDATE_TYPES[schema](**fields, event_id=envelope.event_id, received_at=envelope.received_at,
                                correlation_id=envelope.correlation_id)


def _header(record: Record, name: str) -> str | None:
    return next((value.decode(errors="replace") for key, value in record.headers if key == name), None)


class PartitionActor:
    def __init__(self, topic: str, partition: int, schema: type, mailbox: trio.MemoryReceiveChannel[Record],
                 tracker: OffsetTracker, writer: ShardedBatchWriter,
                 send_dead_letter: Callable[[DeadLetter], Awaitable[None]], *, max_batch: int = 500) -> None:
        self._topic, self._partition, self._schema = topic, partition, schema
        self._mailbox = mailbox
        self._tracker = tracker
        self._writer = writer
        self._send_dead_letter = send_dead_letter
        self._max_batch = max_batch
        self._depth = MAILBOX_DEPTH.labels(topic, str(partition))

    async def run(self) -> None:
        async with self._mailbox:
            async for first in self._mailbox:
                batch = [first, *self._take_queued()]
                self._depth.set(self._mailbox.statistics().current_buffer_used)
                await self._process(batch)

    def _take_queued(self) -> list[Record]:
        taken: list[Record] = []
        while len(taken) < self._max_batch - 1:
            try:
                taken.append(self._mailbox.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        return taken

    async def _process(self, batch: list[Record]) -> None:
        BATCH_SIZE.labels(self._topic).observe(len(batch))
        decoded: list[tuple[Record, Update]] = []
        for record in batch:
            try:
                decoded.append((record, decode_update(record.value, self._schema)))
            except InvalidInput as error:
                await self._reject(record, "schema", error.detail, 1)
        if decoded:
            outcomes, attempts = await self._writer.apply([update for _, update in decoded])
            now = dt.datetime.now(dt.UTC)
            for (record, update), outcome, tries in zip(decoded, outcomes, attempts, strict=True):
                OUTCOMES.labels(self._topic, str(outcome)).inc()
                if outcome == REFUSED:
                    await self._reject(record, "schema", "the database refused the event's data", tries,
                                       correlation_id=update.correlation_id)
                    continue
                await self._settle(record, update, outcome, tries, now)
        for record in batch:
            self._tracker.done(record.offset)

    async def _settle(self, record: Record, update: Update, outcome: Outcome, tries: int, now: dt.datetime) -> None:
        error_type = OUTCOME_ERRORS.get(outcome)
        reason = mapping_for(error_type(outcome.value)).dlq_reason if error_type else None
        if reason is None:  # applied, stale, duplicate: done
            END_TO_END.labels(self._topic).observe(max(0.0, (now - update.received_at).total_seconds()))
            log.debug("event settled", topic=self._topic, partition=self._partition, offset=record.offset,
                      outcome=outcome.value, correlation_id=update.correlation_id, event_id=update.event_id,
                      trace_id=trace_id(_header(record, "traceparent")))
            return
        detail = f"{outcome.value}: event {update.provider_event_id} ({update.status})"
        await self._reject(record, reason, detail, tries, correlation_id=update.correlation_id)

    async def _reject(self, record: Record, reason: str, error: str, attempts: int, correlation_id: str = "") -> None:
        await self._send_dead_letter(dead_letter(record, reason, error, attempts, dt.datetime.now(dt.UTC)))
        DEAD_LETTERS.labels(self._topic, reason).inc()
        log.warning("dead-lettered", topic=self._topic, partition=self._partition, offset=record.offset,
                    reason=reason, error=error, correlation_id=correlation_id)
