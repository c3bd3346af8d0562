"""Internal updates as Protobuf (``shared/proto/updates.proto``), validated by the same rules as JSON.

Decoding (upb) and serializing take well under a microsecond; what cost more was the conversion
to and from our Structs in Python — a ``getattr`` per field into a dict, then ``convert``, and
``isoformat`` per time. Both conversions now run in msgspec's C code (``from_attributes``,
``to_builtins``): decode + validate 5.5 → 4.1 µs, encode 3.9 → 2.2 µs (one run, loaded machine;
msgspec's JSON: 2.3 and 0.2 µs). Either way it is microseconds against ~1 ms of HTTP per call,
which is why Protobuf never paid for itself per update; batches are where per-item costs show.
"""

from __future__ import annotations

from typing import TypeVar, cast

import msgspec
from google.protobuf.message import DecodeError, Message

from shared.errors import InvalidInput
from shared.messages import (
    DisputeUpdate,
    InboundUpdate,
    OrderUpdate,
    PaymentDisputeUpdate,
    PaymentIdOrEmpty,
    validation_error,
)
from shared.proto import updates_pb2

PROTOBUF_TYPES: dict[type, type[Message]] = {
    OrderUpdate: updates_pb2.OrderUpdate,
    DisputeUpdate: updates_pb2.DisputeUpdate,
    PaymentDisputeUpdate: updates_pb2.PaymentDisputeUpdate,
}
U = TypeVar("U", bound=InboundUpdate)


class _ProtobufOrderUpdate(OrderUpdate, frozen=True, kw_only=True):
    """``OrderUpdate`` as Protobuf carries it: proto3 cannot tell an unset string from ``""``, so
    ``provider_payment_id`` is read as any (valid) text here and ``""`` becomes None afterwards.
    (A view hiding the empty attribute cost 2.7× the conversion; this costs ~1.3×.)"""

    provider_payment_id: PaymentIdOrEmpty = ""  # "" is None on the wire


def from_protobuf(message: Message, schema: type[U]) -> U:
    """A decoded Protobuf message, validated by the same rules as JSON."""
    try:
        if schema is OrderUpdate:
            return cast(U, _order_update(msgspec.convert(message, _ProtobufOrderUpdate, from_attributes=True)))
        return msgspec.convert(message, schema, from_attributes=True)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None


def _order_update(wire: _ProtobufOrderUpdate) -> OrderUpdate:
    fields = msgspec.structs.asdict(wire)  # validated already: the constructor does not validate again
    fields["provider_payment_id"] = fields["provider_payment_id"] or None
    return OrderUpdate(**fields)


def decode_protobuf(body: bytes, schema: type[U]) -> U:
    try:
        message = PROTOBUF_TYPES[schema].FromString(body)
    except DecodeError:
        raise InvalidInput("body is not a valid Protobuf message",
                           errors=[{"field": "$", "message": "undecodable"}]) from None
    return from_protobuf(message, schema)


def to_protobuf(update: InboundUpdate) -> Message:
    """The Protobuf form of an update (for clients)."""
    fields = msgspec.to_builtins(update)  # times as RFC 3339 strings
    # an optional field left unset is not sent (proto3 has no null; the receiver reads "" as None)
    return PROTOBUF_TYPES[type(update)](**{name: value for name, value in fields.items() if value is not None})
