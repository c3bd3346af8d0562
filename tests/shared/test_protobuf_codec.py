"""The Protobuf forms of the internal updates: ``provider_payment_id`` (proto3 has no null: unset and ``""``
read back as None), disputes named by their payment, batch items of every kind in JSON and Protobuf (every
field, and an invalid item's field errors, the same in both), and every kind of item result."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pytest

from shared.domain import Outcome
from shared.errors import (
    Conflict,
    DatabaseUnavailable,
    InvalidInput,
    InvalidTransition,
    NotFound,
    UserMismatch,
)
from shared.messages import DisputeUpdate, InboundUpdate, OrderUpdate, PaymentDisputeUpdate
from shared.proto import updates_pb2
from shared.protobuf_codec import _order_fields, decode_protobuf, to_protobuf
from shared.update_batch import (
    BatchItem,
    ItemResult,
    decode_json_batch,
    decode_json_results,
    decode_protobuf_batch,
    encode_json_batch,
    encode_json_results,
    protobuf_batch,
    protobuf_results,
    read_protobuf_results,
)
from tests.api.updates import at, dispute_update, order_update, payment_dispute_update


def _roundtrip(update: InboundUpdate) -> InboundUpdate:
    return decode_protobuf(to_protobuf(update).SerializeToString(), type(update))


@pytest.mark.parametrize("update", [
    order_update("o1", "u1", "paid", at(1), provider_payment_id="pi_1"),
    order_update("o1", "u1", "paid", at(1)),
    payment_dispute_update("d1", "pi_1", "opened", at(2)),
    dispute_update("d1", "o1", "u1", "opened", at(2)),
], ids=["order-with-payment", "order-without-payment", "payment-dispute", "dispute"])
def test_an_update_survives_protobuf_unchanged(update: InboundUpdate) -> None:
    assert _roundtrip(update) == update  # same type, same fields: None stays None, a payment id stays


def test_an_empty_payment_id_reads_back_as_none() -> None:
    message = to_protobuf(order_update("o1", "u1", "paid", at(1)))
    message.provider_payment_id = ""  # what an older ingest, or any sender that leaves it unset, sends
    decoded = decode_protobuf(message.SerializeToString(), OrderUpdate)
    assert isinstance(decoded, OrderUpdate) and decoded.provider_payment_id is None


def test_a_payment_id_obeys_the_json_rules_in_protobuf_too() -> None:
    message = to_protobuf(order_update("o1", "u1", "paid", at(1)))
    message.provider_payment_id = "pi\x00"
    with pytest.raises(InvalidInput) as refused:
        decode_protobuf(message.SerializeToString(), OrderUpdate)
    assert refused.value.errors == [{"field": "provider_payment_id", "message": "must not contain control characters"}]


def test_a_batch_carries_every_kind_of_update_in_json_and_protobuf() -> None:
    items = [BatchItem(order_update("o1", "u1", "paid", at(1), provider_payment_id="pi_1"), "00-ab-cd-01"),
             BatchItem(dispute_update("d1", "o1", "u1", "opened", at(2))),
             BatchItem(payment_dispute_update("d2", "pi_1", "opened", at(3)))]
    assert decode_json_batch(encode_json_batch(items), 10) == items
    assert decode_protobuf_batch(protobuf_batch(items).SerializeToString(), 10) == items
    assert isinstance(items[2].update, PaymentDisputeUpdate)


def test_an_item_with_no_update_is_an_invalid_item() -> None:
    body = updates_pb2.UpdateBatch(items=[updates_pb2.BatchItem(traceparent="x")]).SerializeToString()
    (item,) = decode_protobuf_batch(body, 10)
    assert isinstance(item, InvalidInput) and "payment_dispute" in item.detail


@pytest.mark.parametrize(("schema", "message"), [(OrderUpdate, updates_pb2.OrderUpdate),
                                                 (DisputeUpdate, updates_pb2.DisputeUpdate),
                                                 (PaymentDisputeUpdate, updates_pb2.PaymentDisputeUpdate)])
def test_every_field_of_an_update_has_its_protobuf_field(schema: type[msgspec.Struct], message: Any) -> None:
    # the codec reads a message's fields by the Struct's names (a dict for orders, attributes for disputes)
    assert set(schema.__struct_fields__) == {f.name for f in message.DESCRIPTOR.fields}


def test_an_order_is_read_from_every_field_of_its_message() -> None:
    message = to_protobuf(order_update("o1", "u1", "paid", at(1), provider_payment_id="pi_1"))
    assert set(_order_fields(message)) == set(OrderUpdate.__struct_fields__)


def test_every_field_survives_a_protobuf_batch() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    items = [BatchItem(order_update("o1", "u1", "refunded", dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=plus_two),
                                    provider_payment_id="pi_9", correlation_id="corr-9", amount=2**63 - 1,
                                    currency="USD", received_at=dt.datetime(2026, 1, 2, tzinfo=plus_two)), "00-tp-01"),
             BatchItem(order_update("o2", "u2", "pending", at(1), correlation_id="", amount=0)),
             BatchItem(dispute_update("d1", "o1", "u1", "evidence_required", at(2), reason="", correlation_id="")),
             BatchItem(payment_dispute_update("d2", "pi_9", "lost", at(3), reason="a\tb\nc"), "x")]
    decoded = decode_protobuf_batch(protobuf_batch(items).SerializeToString(), 10)
    assert decoded == items
    assert [msgspec.structs.asdict(i.update) for i in decoded if isinstance(i, BatchItem)] == \
        [msgspec.structs.asdict(i.update) for i in items]  # offsets too, not only the instants
    assert [(type(i), type(i.update)) for i in decoded if isinstance(i, BatchItem)] == \
        [(BatchItem, type(i.update)) for i in items]


def test_an_empty_payment_id_in_a_batch_reads_back_as_none() -> None:
    batch = protobuf_batch([BatchItem(order_update("o1", "u1", "paid", at(1), provider_payment_id="pi_1"))])
    batch.items[0].order.provider_payment_id = ""
    (item,) = decode_protobuf_batch(batch.SerializeToString(), 10)
    assert isinstance(item, BatchItem) and isinstance(item.update, OrderUpdate)
    assert item.update.provider_payment_id is None


_INVALID = [
    order_update("o1", "u1", "paid", at(1), currency="eur"),
    order_update("o1", "u1", "shipped", at(1)),
    order_update("o1", "u\x00", "paid", at(1)),
    order_update("o1", "u1", "paid", at(1), amount=-1),
    order_update("", "u1", "paid", at(1)),
    order_update("o1", "u1", "paid", at(1), provider_payment_id="pi\x00"),
    order_update("o1", "u1", "paid", at(1), provider_payment_id="p" * 256),
    order_update("o1", "u1", "paid", at(1), event_id="e" * 65),
    dispute_update("d1", "o1", "u1", "opened", at(2), reason="a\x00"),
    dispute_update("d1", "o1", "u1", "won", at(2), currency="EURO"),
    payment_dispute_update("d2", "", "opened", at(3)),
    payment_dispute_update("d2", "pi_1", "closed", at(3)),
]


@pytest.mark.parametrize("update", _INVALID)
def test_an_invalid_item_has_the_same_field_errors_in_protobuf_as_in_json(update: InboundUpdate) -> None:
    items = [BatchItem(order_update("o0", "u0", "paid", at(1))), BatchItem(update)]
    from_json = decode_json_batch(encode_json_batch(items), 10)
    from_protobuf = decode_protobuf_batch(protobuf_batch(items).SerializeToString(), 10)
    assert from_protobuf[0] == from_json[0] == items[0]  # the neighbour is unharmed
    refused, refused_json = from_protobuf[1], from_json[1]
    assert isinstance(refused, InvalidInput) and isinstance(refused_json, InvalidInput)
    assert refused.errors and refused.errors == refused_json.errors  # (JSON's detail names it 'order.currency')
    assert ItemResult.of(refused).errors == ItemResult.of(refused_json).errors and ItemResult.of(refused).status == 400


def test_an_edge_of_the_calendar_time_is_an_invalid_item_in_protobuf_too() -> None:
    batch = protobuf_batch([BatchItem(order_update("o1", "u1", "paid", at(1)))])
    batch.items[0].order.occurred_at = "0001-01-01T00:00:00+14:00"  # no UTC value: __post_init__ refuses it
    (item,) = decode_protobuf_batch(batch.SerializeToString(), 10)
    assert isinstance(item, InvalidInput) and item.errors[0]["field"] == "occurred_at"


def test_a_time_without_a_zone_is_an_invalid_item_in_protobuf() -> None:
    batch = protobuf_batch([BatchItem(dispute_update("d1", "o1", "u1", "opened", at(1)))])
    batch.items[0].dispute.received_at = "2026-01-01T00:00:00"
    (item,) = decode_protobuf_batch(batch.SerializeToString(), 10)
    assert isinstance(item, InvalidInput) and item.errors[0]["field"] == "received_at"


_RESULTS = [
    *(ItemResult.of(outcome) for outcome in Outcome),
    ItemResult.of(InvalidInput("invalid field 'currency'", errors=[{"field": "currency", "message": "3 letters"},
                                                                   {"field": "amount", "message": ">= 0"}])),
    ItemResult.of(InvalidTransition("paid → pending")),
    ItemResult.of(NotFound("no such order")),
    ItemResult.of(UserMismatch("not the order's user")),
    ItemResult.of(Conflict("already applied")),
    ItemResult.of(DatabaseUnavailable("shard 1 is down")),
    ItemResult(418, "", "about:blank", "I'm a teapot", "short and stout"),
]


def test_every_result_survives_protobuf_and_json() -> None:
    from_protobuf = read_protobuf_results(updates_pb2.BatchResult.FromString(
        protobuf_results(_RESULTS).SerializeToString()))
    assert from_protobuf == decode_json_results(encode_json_results(_RESULTS)) == _RESULTS
    assert all(type(r) is ItemResult and type(r.errors) is tuple for r in from_protobuf)
    assert from_protobuf[len(Outcome)].field_errors() == [{"field": "currency", "message": "3 letters"},
                                                          {"field": "amount", "message": ">= 0"}]
    assert {r.status for r in from_protobuf} == {200, 400, 404, 409, 418, 422, 503}


def test_a_result_is_sent_as_before() -> None:
    # the same message the field-by-field construction made: every field, only where set
    message = protobuf_results(_RESULTS[len(Outcome):len(Outcome) + 1]).results[0]
    assert message.status == 400 and message.outcome == "" and message.problem_type.endswith(":invalid-input")
    assert [(e.field, e.message) for e in message.errors] == [("currency", "3 letters"), ("amount", ">= 0")]
    applied = protobuf_results([ItemResult.of(Outcome.APPLIED)]).results[0]
    assert [(f.name, value) for f, value in applied.ListFields()] == [("status", 200), ("outcome", "applied")]
