from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class OrderUpdate(_message.Message):
    __slots__ = ("event_id", "provider_event_id", "order_id", "user_id", "status", "amount", "currency", "occurred_at", "received_at", "correlation_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    provider_event_id: str
    order_id: str
    user_id: str
    status: str
    amount: int
    currency: str
    occurred_at: str
    received_at: str
    correlation_id: str
    def __init__(self, event_id: _Optional[str] = ..., provider_event_id: _Optional[str] = ..., order_id: _Optional[str] = ..., user_id: _Optional[str] = ..., status: _Optional[str] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., occurred_at: _Optional[str] = ..., received_at: _Optional[str] = ..., correlation_id: _Optional[str] = ...) -> None: ...

class DisputeUpdate(_message.Message):
    __slots__ = ("event_id", "provider_event_id", "dispute_id", "order_id", "user_id", "status", "reason", "amount", "currency", "occurred_at", "received_at", "correlation_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    DISPUTE_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    provider_event_id: str
    dispute_id: str
    order_id: str
    user_id: str
    status: str
    reason: str
    amount: int
    currency: str
    occurred_at: str
    received_at: str
    correlation_id: str
    def __init__(self, event_id: _Optional[str] = ..., provider_event_id: _Optional[str] = ..., dispute_id: _Optional[str] = ..., order_id: _Optional[str] = ..., user_id: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., occurred_at: _Optional[str] = ..., received_at: _Optional[str] = ..., correlation_id: _Optional[str] = ...) -> None: ...

class UpdateResult(_message.Message):
    __slots__ = ("outcome", "detail")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    outcome: str
    detail: str
    def __init__(self, outcome: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...
