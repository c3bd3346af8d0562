"""A batch of internal updates on the wire, and one result per item: JSON and Protobuf.

Ingest forwards the updates of concurrent webhooks as one call
(``POST /internal/updates/batch``, or gRPC ``SendUpdates``) so that a webhook no longer
costs a whole HTTP exchange between the two processes. The answer must still be each
webhook's own, so a batch is judged item by item: an item that fails validation is a
400 *item*, not a refused batch, and every item gets the status the single-update
endpoint would have answered (its problem type from the one table in ``shared.errors``).
Only what is wrong with the batch as a whole (not JSON, not a list, too many items)
refuses it.

JSON: ``[{"order": {...}}, {"dispute": {...}, "traceparent": "..."}, {"payment_dispute": {...}}]`` answered by
``{"results": [{"status": 200, "outcome": "applied"}, {"status": 404, "type": ..., "title": ...,
"detail": ...}]}``. Protobuf: ``UpdateBatch`` answered by ``BatchResult``
(``shared/proto/updates.proto``). Items are validated by the same rules as single updates.
A ``payment_dispute`` is a dispute that names only the provider's payment (Stripe): the api
finds its order through the payment's link before applying it (no link yet: a 404 item).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec
from google.protobuf.message import DecodeError

from shared.domain import Outcome
from shared.errors import InvalidInput, PayloadTooLarge, WebhookError, mapping_for
from shared.messages import (
    DECODE_ERRORS,
    DisputeUpdate,
    InboundUpdate,
    OrderUpdate,
    PaymentDisputeUpdate,
    validation_error,
)
from shared.proto import updates_pb2
from shared.protobuf_codec import READERS

ITEM_BODY_BYTES = 8 * 1024  # a batch's body may hold this much per allowed item (a single update is < 6 KiB)


class BatchItem(msgspec.Struct, frozen=True):
    update: InboundUpdate
    traceparent: str = ""


class _JsonItem(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    order: OrderUpdate | None = None
    dispute: DisputeUpdate | None = None
    payment_dispute: PaymentDisputeUpdate | None = None
    traceparent: str = ""


class FieldError(msgspec.Struct, frozen=True):
    field: str
    message: str


class ItemResult(msgspec.Struct, frozen=True, omit_defaults=True):
    """One item's answer: ``status`` as the single endpoint's HTTP status; ``outcome`` when 200.

    Its fields are named and typed as Protobuf's ``ItemResult`` (``to_builtins`` gives the
    message's fields, defaults left out); JSON names ``problem_type`` ``type``."""

    status: int
    outcome: str = ""
    problem_type: str = ""
    title: str = ""
    detail: str = ""
    errors: tuple[FieldError, ...] = ()  # a 400 item's field errors, passed on to the webhook's problem

    @classmethod
    def of(cls, answer: Outcome | WebhookError) -> ItemResult:
        if isinstance(answer, Outcome):
            return _ANSWERED[answer]
        mapping = mapping_for(answer)
        errors = tuple(FieldError(e.get("field", ""), e.get("message", "")) for e in answer.errors)
        return cls(mapping.http_status, "", mapping.problem_type, answer.title, answer.detail, errors)

    def field_errors(self) -> list[dict[str, str]]:
        return [{"field": e.field, "message": e.message} for e in self.errors]


_ANSWERED = {outcome: ItemResult(200, outcome.value) for outcome in Outcome}  # immutable: one each


# --- the api's side: decode a batch, encode the results ------------------------------------

_raw_items = msgspec.json.Decoder(list[msgspec.Raw])
_json_item = msgspec.json.Decoder(_JsonItem)


def _check_size(count: int, max_items: int) -> None:
    if count > max_items:
        raise PayloadTooLarge(f"a batch holds at most {max_items} updates ({count} sent)")
    if count == 0:
        raise InvalidInput("a batch holds at least one update", errors=[{"field": "$", "message": "empty"}])


def decode_json_batch(body: bytes, max_items: int) -> list[BatchItem | InvalidInput]:
    """The items of a JSON batch, each an update or why it is invalid; ``WebhookError`` for the batch."""
    try:
        raws = _raw_items.decode(body)
    except DECODE_ERRORS as exc:
        raise validation_error(exc) from None
    _check_size(len(raws), max_items)
    return [_json_batch_item(raw) for raw in raws]


def _json_batch_item(raw: msgspec.Raw) -> BatchItem | InvalidInput:
    try:
        item = _json_item.decode(raw)
    except DECODE_ERRORS as exc:
        return _within_the_update(validation_error(exc))
    updates = [u for u in (item.order, item.dispute, item.payment_dispute) if u is not None]
    if len(updates) != 1:
        return _not_one_update()
    return BatchItem(updates[0], item.traceparent)


_ITEM_KEY = re.compile(r"^(?:order|dispute|payment_dispute)\.")


def _within_the_update(error: InvalidInput) -> InvalidInput:
    """Field paths as the single endpoint and the webhook name them: ``currency``, not ``order.currency``."""
    error.errors = [{**e, "field": _ITEM_KEY.sub("", e.get("field", ""))} for e in error.errors]
    return error


def _not_one_update() -> InvalidInput:
    return InvalidInput("an item holds exactly one of 'order', 'dispute' and 'payment_dispute'",
                        errors=[{"field": "$", "message": "exactly one of order, dispute, payment_dispute"}])


def decode_protobuf_batch(body: bytes, max_items: int) -> list[BatchItem | InvalidInput]:
    """The items of an ``UpdateBatch``, as ``decode_json_batch``."""
    try:
        batch = updates_pb2.UpdateBatch.FromString(body)
    except DecodeError:
        raise InvalidInput("body is not a valid Protobuf UpdateBatch",
                           errors=[{"field": "$", "message": "undecodable"}]) from None
    items = batch.items
    _check_size(len(items), max_items)
    return [_protobuf_batch_item(item) for item in items]


_PROTOBUF_READERS = {"order": READERS[OrderUpdate], "dispute": READERS[DisputeUpdate],
                     "payment_dispute": READERS[PaymentDisputeUpdate]}


def _protobuf_batch_item(item: updates_pb2.BatchItem) -> BatchItem | InvalidInput:
    which = item.WhichOneof("update")
    if which is None:
        return _not_one_update()
    try:
        return BatchItem(_PROTOBUF_READERS[which](getattr(item, which)), item.traceparent)
    except msgspec.ValidationError as exc:
        return validation_error(exc)


class _JsonResult(msgspec.Struct, frozen=True, omit_defaults=True):
    status: int
    outcome: str = ""
    type: str = ""
    title: str = ""
    detail: str = ""
    errors: tuple[FieldError, ...] = ()


class _JsonResults(msgspec.Struct, frozen=True):
    results: list[_JsonResult]


_encode = msgspec.json.Encoder().encode


def encode_json_results(results: Sequence[ItemResult]) -> bytes:
    return _encode(_JsonResults([_JsonResult(r.status, r.outcome, r.problem_type, r.title, r.detail, r.errors)
                                 for r in results]))


def protobuf_results(results: Sequence[ItemResult]) -> updates_pb2.BatchResult:
    # ItemResult's fields are the message's: one to_builtins, then upb builds the whole answer in C
    return updates_pb2.BatchResult(results=msgspec.to_builtins(results))


# --- ingest's side: encode a batch, decode the results --------------------------------------

_KEYS: dict[type[InboundUpdate], str] = {OrderUpdate: "order", DisputeUpdate: "dispute",
                                         PaymentDisputeUpdate: "payment_dispute"}


def encode_json_batch(items: Sequence[BatchItem]) -> bytes:
    return _encode([{_KEYS[type(i.update)]: i.update, **({"traceparent": i.traceparent} if i.traceparent else {})}
                    for i in items])


def protobuf_batch(items: Sequence[BatchItem]) -> updates_pb2.UpdateBatch:
    # every update's fields in one to_builtins (times as RFC 3339 strings, an unset optional None,
    # which the message leaves unset), then upb builds the whole batch from the dicts in C
    updates = msgspec.to_builtins([item.update for item in items])
    return updates_pb2.UpdateBatch(items=[{_KEYS[type(item.update)]: fields, "traceparent": item.traceparent}
                                          for item, fields in zip(items, updates, strict=True)])


_json_results = msgspec.json.Decoder(_JsonResults)


def decode_json_results(body: bytes) -> list[ItemResult]:
    """The api's results; raises ``msgspec.DecodeError`` / ``ValidationError`` when unreadable."""
    return [ItemResult(r.status, r.outcome, r.type, r.title, r.detail, r.errors)
            for r in _json_results.decode(body).results]


def read_protobuf_results(message: updates_pb2.BatchResult) -> list[ItemResult]:
    return [ItemResult(r.status, r.outcome, r.problem_type, r.title, r.detail,
                       tuple([FieldError(e.field, e.message) for e in errors]) if (errors := r.errors) else ())
            for r in message.results]
