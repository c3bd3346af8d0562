"""What ingest does with a webhook once it is authentic and valid, by ``WEBHOOK_MODE``.

kafka: wrap it in the envelope and produce it (202 once the broker acknowledged).
http/grpc: hand it to the api through the forwarder actor and answer with the outcome
(202 applied or stale, 200 duplicate); rejections arrive as errors. A dispute that names only
its payment (Stripe) goes as it is: the api finds its order through the payment's link
(not linked yet: 404, and the provider retries).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

from shared.domain import Outcome
from shared.envelope import TraceContext, Webhook, build_envelope, event_id_for, record_headers, record_key
from shared.kafka_producer import KafkaProducer
from shared.messages import (
    DisputeUpdate,
    DisputeWebhook,
    InboundUpdate,
    LinkedOrderWebhook,
    OrderUpdate,
    OrderWebhook,
    PaymentDisputeUpdate,
    PaymentDisputeWebhook,
    Update,
    encode_json,
)
from shared.settings import Settings
from shared.topics import DISPUTES, ORDERS


@dataclass(frozen=True)
class RequestContext:
    received_at: dt.datetime
    correlation_id: str
    trace: TraceContext


@dataclass(frozen=True)
class Accepted:
    status: int
    body: dict[str, Any]


class Processor(Protocol):
    async def process(self, webhook: Webhook, context: RequestContext) -> Accepted: ...


class KafkaProcessor:
    def __init__(self, producer: KafkaProducer, settings: Settings) -> None:
        self._producer = producer
        self._topics = {OrderWebhook: settings.topic(ORDERS), DisputeWebhook: settings.topic(DISPUTES),
                        LinkedOrderWebhook: settings.topic(ORDERS), PaymentDisputeWebhook: settings.topic(DISPUTES)}

    async def process(self, webhook: Webhook, context: RequestContext) -> Accepted:
        envelope = build_envelope(webhook, context.received_at, context.correlation_id, context.trace)
        await self._producer.produce(self._topics[type(webhook)], record_key(webhook).encode(), encode_json(envelope),
                                     record_headers(envelope, context.trace))
        return Accepted(202, {"status": "accepted", "event_id": envelope.event_id})


_UPDATE_TYPES: dict[type, type[Update | PaymentDisputeUpdate]] = {
    OrderWebhook: OrderUpdate, DisputeWebhook: DisputeUpdate, LinkedOrderWebhook: OrderUpdate,
    PaymentDisputeWebhook: PaymentDisputeUpdate}


def to_update(webhook: Webhook, context: RequestContext) -> Update | PaymentDisputeUpdate:
    fields = {name: getattr(webhook, name) for name in webhook.__struct_fields__}
    return _UPDATE_TYPES[type(webhook)](**fields, event_id=event_id_for(webhook.provider_event_id),
                                        received_at=context.received_at, correlation_id=context.correlation_id)


class UpdateSink(Protocol):
    """Where the sync processor hands an update (``UpdateForwarder``): its outcome, or raises the error."""

    async def forward(self, update: InboundUpdate) -> Outcome: ...


class SyncProcessor:
    def __init__(self, client: UpdateSink) -> None:
        self._client = client

    async def process(self, webhook: Webhook, context: RequestContext) -> Accepted:
        update = to_update(webhook, context)
        outcome = await self._client.forward(update)
        if outcome is Outcome.DUPLICATE:
            return Accepted(200, {"status": "duplicate", "event_id": update.event_id})
        return Accepted(202, {"status": outcome.value, "event_id": update.event_id})
