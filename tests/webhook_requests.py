"""Signed webhook requests, as a provider would send them."""

from __future__ import annotations

import itertools
import json
from typing import Any

from ingest.signatures import signed_headers as ingest_signed_headers

TEST_SECRET = b"test-secret-0123456789abcdef"
_ids = itertools.count()


def signed_headers(body: bytes, *, secret: bytes = TEST_SECRET, timestamp: int | None = None,
                   webhook_id: str | None = None) -> dict[str, str]:
    return ingest_signed_headers(secret, webhook_id or f"msg_{next(_ids)}", body, timestamp)


def order_webhook(**fields: Any) -> dict[str, Any]:
    return {"provider_event_id": f"evt_{next(_ids)}", "order_id": "ord_1", "user_id": "usr_1", "status": "paid",
            "amount": 1999, "currency": "EUR", "occurred_at": "2026-11-20T10:00:00+01:00", **fields}


def dispute_webhook(**fields: Any) -> dict[str, Any]:
    return {"provider_event_id": f"evt_{next(_ids)}", "dispute_id": "dsp_1", "order_id": "ord_1",
            "user_id": "usr_1", "status": "opened", "reason": "fraudulent", "amount": 1999, "currency": "EUR",
            "occurred_at": "2026-11-20T10:00:00Z", **fields}


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()
