"""Stripe events as Stripe sends them: payloads from the fixtures under ``tests/fixtures/stripe/``
(shaped like Stripe's published API fixtures), signed by the official ``stripe`` package."""

from __future__ import annotations

import copy
import itertools
import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import stripe

from ingest.providers.stripe import sign
from tests.conftest import TEST_STRIPE_SECRET

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
_ids = itertools.count()
# The fixture each event type is derived from (same object type; ``type`` and status changed).
SOURCE_FIXTURE = {
    "payment_intent.processing": "payment_intent.succeeded",
    "payment_intent.amount_capturable_updated": "payment_intent.succeeded",
    "payment_intent.succeeded": "payment_intent.succeeded",
    "payment_intent.payment_failed": "payment_intent.payment_failed",
    "payment_intent.canceled": "payment_intent.succeeded",
    "charge.refunded": "charge.refunded",
    "charge.dispute.created": "charge.dispute.created",
    "charge.dispute.updated": "charge.dispute.created",
    "charge.dispute.closed": "charge.dispute.created",
    "customer.created": "customer.created",
}


@cache
def _fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def stripe_event(event_type: str, *, event_id: str | None = None, created: int | None = None,
                 **object_fields: Any) -> dict[str, Any]:
    """A full event of ``event_type``; ``object_fields`` replace fields of ``data.object``."""
    event = copy.deepcopy(_fixture(SOURCE_FIXTURE[event_type]))
    event["type"] = event_type
    event["id"] = event_id or f"evt_test_{next(_ids)}"
    if created is not None:
        event["created"] = created
    event["data"]["object"].update(object_fields)
    return event


def stripe_headers(body: bytes, *, secret: str = TEST_STRIPE_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Signed by ``stripe.WebhookSignature.generate_signature_header``, the package's own helper for tests
    (it takes text: a body that is not UTF-8 is signed by ours, which a test holds equal to it)."""
    timestamp = timestamp or int(time.time())
    try:
        header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp)
    except UnicodeDecodeError:
        header = sign(secret, timestamp, body)
    return {"content-type": "application/json", "stripe-signature": header}


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()
