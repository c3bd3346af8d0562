"""The Protobuf forms of the internal updates: ``provider_payment_id`` (proto3 has no null: unset and ``""``
read back as None), disputes named by their payment, and batch items of every kind in JSON and Protobuf."""

from __future__ import annotations

import pytest

from shared.errors import InvalidInput
from shared.messages import InboundUpdate, OrderUpdate, PaymentDisputeUpdate
from shared.proto import updates_pb2
from shared.protobuf_codec import decode_protobuf, to_protobuf
from shared.update_batch import (
    BatchItem,
    decode_json_batch,
    decode_protobuf_batch,
    encode_json_batch,
    protobuf_batch,
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
