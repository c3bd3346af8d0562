"""Stripe: ``Stripe-Signature`` verification, and the mapping of ``shared.stripe_events``.

Stripe signs ``"{t}.{raw body}"`` with HMAC-SHA256 keyed with the signing secret's literal
text (``whsec_…`` as UTF-8, not base64-decoded as Standard Webhooks does) and sends
``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`` (several ``v1`` while Stripe rolls a
secret; other schemes such as ``v0`` are ignored). Any secret of
``STRIPE_WEBHOOK_SECRETS`` may match (rotation on our side); a ``t`` more than ±5 minutes
from now is a replay. Comparisons are constant-time. Work is bounded before any HMAC
runs, as for Standard Webhooks: a header of at most 4 KiB, one ``t`` of at most 12
digits, at most 16 ``v1`` entries.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from ingest.metrics import PROVIDER_EVENTS_IGNORED
from ingest.signatures import (
    MAX_SIGNATURE_HEADER_BYTES,
    MAX_SIGNATURES,
    MAX_TIMESTAMP_DIGITS,
    TOLERANCE_SECONDS,
    require_a_match,
)
from shared.envelope import Webhook
from shared.errors import ProviderNotConfigured, Unauthorized
from shared.stripe_events import Ignored, map_stripe_event

HEADER = b"stripe-signature"
MAX_TYPE_LABELS = 256  # distinct event types counted by name; the rest as "other" (bounded cardinality)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Stripe-Signature`` Stripe would send (``webhooks send-sample`` uses it)."""
    return f"t={timestamp},v1={_mac(secret.encode(), str(timestamp).encode() + b'.' + body).decode()}"


def _mac(secret: bytes, message: bytes) -> bytes:
    return hmac.digest(secret, message, hashlib.sha256).hex().encode()


def verify_signature(secrets: Sequence[bytes], header: bytes | None, body: bytes, now: float) -> None:
    """Raise ``Unauthorized`` unless one ``v1`` of the header matches one secret, in time."""
    if not header:
        raise Unauthorized("missing Stripe-Signature header")
    if len(header) > MAX_SIGNATURE_HEADER_BYTES:
        raise Unauthorized(f"Stripe-Signature is longer than {MAX_SIGNATURE_HEADER_BYTES} bytes")
    pairs = [item.partition(b"=") for item in header.split(b",")]
    timestamps = [value.strip() for key, _, value in pairs if key.strip() == b"t"]
    presented = [value.strip() for key, _, value in pairs if key.strip() == b"v1"]
    if len(timestamps) != 1:
        raise Unauthorized("Stripe-Signature must carry exactly one t=<unix seconds>")
    timestamp = timestamps[0]
    if len(timestamp) > MAX_TIMESTAMP_DIGITS or not (timestamp.isascii() and timestamp.isdigit()):
        raise Unauthorized("Stripe-Signature t must be unix seconds")
    if abs(int(now) - int(timestamp)) > TOLERANCE_SECONDS:
        raise Unauthorized("Stripe-Signature t is outside the ±5 minute tolerance")
    if not presented:
        raise Unauthorized("Stripe-Signature carries no v1 signature")
    if len(presented) > MAX_SIGNATURES:
        raise Unauthorized(f"Stripe-Signature lists more than {MAX_SIGNATURES} v1 signatures")
    message = timestamp + b"." + body
    require_a_match(presented, [_mac(secret, message) for secret in secrets])


class Stripe:
    name = "stripe"
    auth_headers = (HEADER,)

    def __init__(self, secrets: Sequence[bytes]) -> None:
        """``secrets``: the UTF-8 bytes of each ``whsec_…``; none means the endpoint is not configured."""
        self._secrets = tuple(secrets)
        self._type_labels: set[str] = set()

    def verify(self, headers: Mapping[bytes, bytes], body: bytes, now: float) -> None:
        if not self._secrets:
            raise ProviderNotConfigured("Stripe webhooks are not configured here (STRIPE_WEBHOOK_SECRETS is unset)")
        verify_signature(self._secrets, headers.get(HEADER), body, now)

    def map(self, body: bytes) -> Webhook | Ignored:
        mapped = map_stripe_event(body)
        if isinstance(mapped, Ignored):
            PROVIDER_EVENTS_IGNORED.labels(self.name, self._label(mapped.event_type)).inc()
        return mapped

    def _label(self, event_type: str) -> str:
        """The type itself while fewer than ``MAX_TYPE_LABELS`` were seen (Stripe has ~250; the
        body is authentic, but a bound holds whatever Stripe adds), else ``other``."""
        if event_type in self._type_labels:
            return event_type
        if len(self._type_labels) < MAX_TYPE_LABELS and len(event_type) <= 64 and event_type.isprintable():
            self._type_labels.add(event_type)
            return event_type
        return "other"
