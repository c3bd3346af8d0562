"""Internal updates as Protobuf (``shared/proto/updates.proto``), validated by the same rules as JSON."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError, Message

from shared.errors import InvalidInput
from shared.messages import DisputeUpdate, OrderUpdate, Update, convert
from shared.proto import updates_pb2

PROTOBUF_TYPES: dict[type[Update], type[Message]] = {
    OrderUpdate: updates_pb2.OrderUpdate,
    DisputeUpdate: updates_pb2.DisputeUpdate,
}


def from_protobuf(message: Message, schema: type[Update]) -> Update:
    """A decoded Protobuf message, validated by the same rules as JSON."""
    fields: dict[str, Any] = {field.name: getattr(message, field.name) for field in message.DESCRIPTOR.fields}
    return convert(fields, schema)


def decode_protobuf(body: bytes, schema: type[Update]) -> Update:
    try:
        message = PROTOBUF_TYPES[schema].FromString(body)
    except DecodeError:
        raise InvalidInput("body is not a valid Protobuf message",
                           errors=[{"field": "$", "message": "undecodable"}]) from None
    return from_protobuf(message, schema)


def to_protobuf(update: Update) -> Message:
    """The Protobuf form of an update (for clients)."""
    fields = {name: getattr(update, name) for name in update.__struct_fields__}
    for name in ("occurred_at", "received_at"):
        fields[name] = fields[name].isoformat()
    return PROTOBUF_TYPES[type(update)](**fields)
