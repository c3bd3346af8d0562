"""One actor per assigned partition: a bounded mailbox in, batches applied in offset order.

The actor takes what has queued in its mailbox (up to ``max_batch``), decodes each
record's envelope, applies the batch through its ``BatchApplier`` and settles every
record: applied, stale and duplicate are done; rejected ones (schema, invalid
transition, user mismatch) go to the topic's DLQ, then are done. An event whose
order is not known yet goes into its user's retry lane (``RetryLanes``) with that
user's later events, while the other users' events flow on; after its window it is
dead-lettered as ``not_found``. An offset is marked done only once its record is
settled, so the committed prefix never passes unsettled work — a lane holds it back.
The mailbox closing is the signal to finish what is queued and end; what still
waits in a lane is left uncommitted for the partition's next owner.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec
import trio

from shared.domain import OUTCOME_ERRORS, Outcome
from shared.envelope import PAYMENT_DISPUTE_EVENT_TYPE, Envelope
from shared.errors import InvalidInput, mapping_for
from shared.logs import get_logger
from shared.messages import (
    DECODE_ERRORS,
    DisputeUpdate,
    DisputeWebhook,
    InboundUpdate,
    LinkedOrderWebhook,
    OrderUpdate,
    OrderWebhook,
    PaymentDisputeUpdate,
    PaymentDisputeWebhook,
    validation_error,
)
from shared.shard_applier import REFUSED
from shared.tracing import trace_id
from workers.metrics import BATCH_SIZE, DEAD_LETTERS, END_TO_END, MAILBOX_DEPTH, OUTCOMES, RETRY_LANE_DEPTH
from workers.offset_tracker import OffsetTracker
from workers.records import DeadLetter, Record, dead_letter
from workers.retry_lanes import WAITING, LanePolicy, RetryLanes

log = get_logger(__name__)
UPDATE_TYPES: dict[type, type[InboundUpdate]] = {
    OrderWebhook: OrderUpdate, DisputeWebhook: DisputeUpdate, LinkedOrderWebhook: OrderUpdate,
    PaymentDisputeWebhook: PaymentDisputeUpdate}
_decoders: dict[type, msgspec.json.Decoder[Any]] = {}


class _EventType(msgspec.Struct):
    event_type: str = ""


_event_type = msgspec.json.Decoder(_EventType)


def _schema_of(value: bytes | None, schema: type) -> type:
    """The disputes topic carries two shapes: ours, and a provider's dispute that names only its
    payment; the envelope's ``event_type`` tells them apart (an undecodable value keeps ``schema``,
    whose decode then reports the error)."""
    if schema is not DisputeWebhook:
        return schema
    try:
        kind = _event_type.decode(value or b"").event_type
    except DECODE_ERRORS:
        return schema
    return PaymentDisputeWebhook if kind == PAYMENT_DISPUTE_EVENT_TYPE else schema


def lane_key(update: InboundUpdate) -> str:
    """The order that must hold: a user's events, or the events of a dispute known only by its payment
    (the Kafka key of each). NUL cannot occur in an id, so the two never share a lane by accident."""
    return f"\x00payment:{update.provider_payment_id}" if isinstance(update, PaymentDisputeUpdate) else update.user_id


def decode_update(value: bytes | None, schema: type) -> InboundUpdate:
    """The update an envelope carries, or ``InvalidInput`` (a poison record)."""
    schema = _schema_of(value, schema)
    decoder = _decoders.get(schema) or _decoders.setdefault(
        schema, msgspec.json.Decoder(Envelope[schema]))  # type: ignore[valid-type]  # msgspec reads it at run time
    try:
        envelope = decoder.decode(value or b"")
    except DECODE_ERRORS as exc:
        raise validation_error(exc) from None
    fields = {name: getattr(envelope.data, name) for name in envelope.data.__struct_fields__}
    return UPDATE_TYPES[schema](**fields, event_id=envelope.event_id, received_at=envelope.received_at,
                                correlation_id=envelope.correlation_id)


class BatchApplier(Protocol):
    """What the actor needs of the database (``ShardedBatchWriter``; an in-memory one in tests)."""

    async def apply(self, updates: list[InboundUpdate]) -> list[Outcome | str]: ...
    async def refine_not_found(self, update: InboundUpdate) -> Outcome: ...


Pending = tuple[Record, InboundUpdate]
DEFAULT_LANES = LanePolicy()


def _header(record: Record, name: str) -> str | None:
    return next((value.decode(errors="replace") for key, value in record.headers if key == name), None)


class PartitionActor:
    def __init__(self, topic: str, partition: int, schema: type, mailbox: trio.MemoryReceiveChannel[Record],
                 tracker: OffsetTracker, writer: BatchApplier,
                 send_dead_letter: Callable[[DeadLetter], Awaitable[None]], *, max_batch: int = 500,
                 lanes: LanePolicy = DEFAULT_LANES) -> None:
        self._topic, self._partition, self._schema = topic, partition, schema
        self._mailbox = mailbox
        self._tracker = tracker
        self._writer = writer
        self._send_dead_letter = send_dead_letter
        self._max_batch = max_batch
        self._lanes: RetryLanes[Pending] = RetryLanes(lanes)
        self._depth = MAILBOX_DEPTH.labels(topic, str(partition))
        self._lane_depth = RETRY_LANE_DEPTH.labels(topic, str(partition))

    async def run(self) -> None:
        """Until the mailbox is closed and drained; lanes are retried as they fall due meanwhile."""
        async with self._mailbox:
            while True:
                try:
                    batch = await self._receive()
                except trio.EndOfChannel:
                    return
                if batch:
                    self._depth.set(self._mailbox.statistics().current_buffer_used)
                    await self._process(batch)
                await self._retry_due_lanes()
                self._lane_depth.set(self._lanes.depth)

    async def _receive(self) -> list[Record]:
        """What has queued (up to ``max_batch``), or nothing once a lane's retry is due.

        While the lanes are full, nothing more is taken: the mailbox fills and the partition
        is paused, so one user's flood cannot grow memory without bound. Raises
        ``EndOfChannel`` when the mailbox is closed and empty (lanes or not)."""
        due = self._lanes.next_due()
        if self._lanes.full and due is not None:
            mailbox = self._mailbox.statistics()
            if mailbox.open_send_channels == 0 and mailbox.current_buffer_used == 0:
                raise trio.EndOfChannel  # revoked: what waits in the lanes is the next owner's
            await trio.sleep_until(due)
            return []
        try:
            first = self._mailbox.receive_nowait()
        except trio.WouldBlock:
            with trio.move_on_at(due if due is not None else float("inf")):
                first = await self._mailbox.receive()
                return [first, *self._take_queued()]
            return []
        return [first, *self._take_queued()]

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
        now = trio.current_time()
        fresh: list[Pending] = []
        for record in batch:
            try:
                update = decode_update(record.value, self._schema)
            except InvalidInput as error:
                await self._reject(record, "schema", error.detail, 1)
                continue
            if self._lanes.holds(lane_key(update)):
                self._lanes.add(lane_key(update), (record, update), now, tried=False)
            else:
                fresh.append((record, update))
        if not fresh:
            return
        outcomes = await self._writer.apply([update for _, update in fresh])
        now = trio.current_time()
        for (record, update), outcome in zip(fresh, outcomes, strict=True):
            if outcome in WAITING:
                self._lanes.add(lane_key(update), (record, update), now, tried=outcome is Outcome.NOT_FOUND)
            else:
                await self._settle(record, update, outcome, 1)

    async def _retry_due_lanes(self) -> None:
        due = self._lanes.due(trio.current_time())
        if not due:
            return
        outcomes = await self._writer.apply([entry.item[1] for entry in due])
        result = self._lanes.retried(list(zip(due, outcomes, strict=True)), trio.current_time())
        for entry, outcome in result.settled:
            await self._settle(*entry.item, outcome, entry.tries + 1)
        for entry in result.expired:
            await self._settle(*entry.item, await self._writer.refine_not_found(entry.item[1]), entry.tries)

    async def _settle(self, record: Record, update: InboundUpdate, outcome: Outcome | str, tries: int) -> None:
        """Record the outcome (a dead letter for a rejection), then mark the offset done."""
        assert outcome is not Outcome.DEFERRED, "an untried event is never settled"
        OUTCOMES.labels(self._topic, str(outcome)).inc()
        if outcome == REFUSED:
            await self._reject(record, "schema", "the database refused the event's data", tries,
                               correlation_id=update.correlation_id)
            return
        error_type = OUTCOME_ERRORS.get(Outcome(outcome))
        reason = mapping_for(error_type(str(outcome))).dlq_reason if error_type else None
        if reason is None:  # applied, stale, duplicate: done
            received = dt.datetime.now(dt.UTC) - update.received_at
            END_TO_END.labels(self._topic).observe(max(0.0, received.total_seconds()))
            log.debug("event settled", topic=self._topic, partition=self._partition, offset=record.offset,
                      outcome=str(outcome), correlation_id=update.correlation_id, event_id=update.event_id,
                      trace_id=trace_id(_header(record, "traceparent")))
            self._tracker.done(record.offset)
            return
        detail = f"{outcome}: event {update.provider_event_id} ({update.status})"
        await self._reject(record, reason, detail, tries, correlation_id=update.correlation_id)

    async def _reject(self, record: Record, reason: str, error: str, attempts: int, correlation_id: str = "") -> None:
        await self._send_dead_letter(dead_letter(record, reason, error, attempts, dt.datetime.now(dt.UTC)))
        DEAD_LETTERS.labels(self._topic, reason).inc()
        log.warning("dead-lettered", topic=self._topic, partition=self._partition, offset=record.offset,
                    reason=reason, error=error, correlation_id=correlation_id)
        self._tracker.done(record.offset)
