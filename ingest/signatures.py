"""Standard Webhooks signature verification (https://www.standardwebhooks.com).

The provider signs ``"{webhook-id}.{webhook-timestamp}.{raw body}"`` with HMAC-SHA256
and sends ``webhook-signature: v1,<base64> [v1,<base64> ...]``. Any active secret
may match (rotation). Timestamps more than ±5 minutes from now are replays.
Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from shared.errors import Unauthorized

TOLERANCE_SECONDS = 5 * 60


def sign(secret: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one message (providers and tests use this)."""
    return "v1," + _mac(secret, f"{webhook_id}.{timestamp}.".encode() + body).decode()


def _mac(secret: bytes, message: bytes) -> bytes:
    """Base64 of the HMAC-SHA256; ``hmac.digest`` is the one-shot C path (every request pays this)."""
    return base64.b64encode(hmac.digest(secret, message, hashlib.sha256))


def verify(
    secrets: Sequence[bytes],
    webhook_id: str | None,
    timestamp: str | None,
    signature_header: str | None,
    body: bytes,
    now: float,
) -> None:
    """Raise ``Unauthorized`` unless one ``v1`` signature matches one secret, in time."""
    if not webhook_id or not timestamp or not signature_header:
        raise Unauthorized("missing webhook-id, webhook-timestamp or webhook-signature header")
    if not (timestamp.isascii() and timestamp.isdigit()):  # str.isdigit alone admits "²", which int() refuses
        raise Unauthorized("webhook-timestamp must be unix seconds")
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise Unauthorized("webhook-timestamp is outside the ±5 minute tolerance")
    presented = [part[3:].encode() for part in signature_header.split() if part.startswith("v1,")]
    message = f"{webhook_id}.{timestamp}.".encode() + body
    expected = [_mac(secret, message) for secret in secrets]
    matched = False
    for candidate in presented:
        for good in expected:
            matched |= hmac.compare_digest(candidate, good)
    if not matched:
        raise Unauthorized("no valid signature")
