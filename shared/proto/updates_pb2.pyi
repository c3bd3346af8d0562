from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OrderUpdate(_message.Message):
    __slots__ = ("event_id", "provider_event_id", "order_id", "user_id", "status", "amount", "currency", "occurred_at", "received_at", "correlation_id", "provider_payment_id")
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
    PROVIDER_PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
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
    provider_payment_id: str
    def __init__(self, event_id: _Optional[str] = ..., provider_event_id: _Optional[str] = ..., order_id: _Optional[str] = ..., user_id: _Optional[str] = ..., status: _Optional[str] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., occurred_at: _Optional[str] = ..., received_at: _Optional[str] = ..., correlation_id: _Optional[str] = ..., provider_payment_id: _Optional[str] = ...) -> None: ...

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

class PaymentDisputeUpdate(_message.Message):
    __slots__ = ("event_id", "provider_event_id", "dispute_id", "provider_payment_id", "status", "reason", "amount", "currency", "occurred_at", "received_at", "correlation_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    DISPUTE_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
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
    provider_payment_id: str
    status: str
    reason: str
    amount: int
    currency: str
    occurred_at: str
    received_at: str
    correlation_id: str
    def __init__(self, event_id: _Optional[str] = ..., provider_event_id: _Optional[str] = ..., dispute_id: _Optional[str] = ..., provider_payment_id: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., amount: _Optional[int] = ..., currency: _Optional[str] = ..., occurred_at: _Optional[str] = ..., received_at: _Optional[str] = ..., correlation_id: _Optional[str] = ...) -> None: ...

class UpdateResult(_message.Message):
    __slots__ = ("outcome", "detail")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    outcome: str
    detail: str
    def __init__(self, outcome: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class BatchItem(_message.Message):
    __slots__ = ("order", "dispute", "payment_dispute", "traceparent")
    ORDER_FIELD_NUMBER: _ClassVar[int]
    DISPUTE_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_DISPUTE_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    order: OrderUpdate
    dispute: DisputeUpdate
    payment_dispute: PaymentDisputeUpdate
    traceparent: str
    def __init__(self, order: _Optional[_Union[OrderUpdate, _Mapping]] = ..., dispute: _Optional[_Union[DisputeUpdate, _Mapping]] = ..., payment_dispute: _Optional[_Union[PaymentDisputeUpdate, _Mapping]] = ..., traceparent: _Optional[str] = ...) -> None: ...

class UpdateBatch(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[BatchItem]
    def __init__(self, items: _Optional[_Iterable[_Union[BatchItem, _Mapping]]] = ...) -> None: ...

class FieldError(_message.Message):
    __slots__ = ("field", "message")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    field: str
    message: str
    def __init__(self, field: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ItemResult(_message.Message):
    __slots__ = ("status", "outcome", "problem_type", "title", "detail", "errors")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_TYPE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    status: int
    outcome: str
    problem_type: str
    title: str
    detail: str
    errors: _containers.RepeatedCompositeFieldContainer[FieldError]
    def __init__(self, status: _Optional[int] = ..., outcome: _Optional[str] = ..., problem_type: _Optional[str] = ..., title: _Optional[str] = ..., detail: _Optional[str] = ..., errors: _Optional[_Iterable[_Union[FieldError, _Mapping]]] = ...) -> None: ...

class BatchResult(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ItemResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ItemResult, _Mapping]]] = ...) -> None: ...
