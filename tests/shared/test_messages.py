"""Schema rules that guard the database: what our validation must refuse before PostgreSQL does."""

from __future__ import annotations

import json

import pytest

from shared.errors import InvalidInput
from shared.messages import DisputeWebhook, OrderWebhook, decode_json
from tests.webhook_requests import dispute_webhook, order_webhook


@pytest.mark.parametrize("occurred_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
@pytest.mark.parametrize(("schema", "body"), [(OrderWebhook, order_webhook), (DisputeWebhook, dispute_webhook)])
def test_a_time_with_no_utc_value_is_invalid_input(schema: type, body, occurred_at: str) -> None:  # noqa: ANN001
    """Such a time passed msgspec and then failed PostgreSQL's driver: a 500 in sync mode."""
    with pytest.raises(InvalidInput) as caught:
        decode_json(json.dumps(body(occurred_at=occurred_at)).encode(), schema)
    assert caught.value.errors == [{"field": "occurred_at",
                                    "message": "occurred_at is outside the range of representable times"}]


def test_the_calendars_edges_with_a_utc_value_are_fine() -> None:
    for occurred_at in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00-01:00"):
        decode_json(json.dumps(order_webhook(occurred_at=occurred_at)).encode(), OrderWebhook)
