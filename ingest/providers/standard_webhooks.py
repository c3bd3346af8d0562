"""Our native schema signed the Standard Webhooks way: one instance per route (orders, disputes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ingest.signatures import verify
from shared.envelope import Webhook
from shared.messages import decode_json

AUTH_HEADERS = (b"webhook-id", b"webhook-timestamp", b"webhook-signature")


class StandardWebhooks:
    name = "standard-webhooks"
    auth_headers = AUTH_HEADERS

    def __init__(self, secrets: Sequence[bytes], schema: type[Webhook]) -> None:
        self._secrets = tuple(secrets)
        self._schema = schema

    def verify(self, headers: Mapping[bytes, bytes], body: bytes, now: float) -> None:
        verify(self._secrets, headers.get(b"webhook-id"), headers.get(b"webhook-timestamp"),
               headers.get(b"webhook-signature"), body, now)

    def map(self, body: bytes) -> Webhook:
        return decode_json(body, self._schema)
