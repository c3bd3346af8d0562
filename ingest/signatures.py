"""Standard Webhooks signature verification (https://www.standardwebhooks.com).

The provider signs ``"{webhook-id}.{webhook-timestamp}.{raw body}"`` with HMAC-SHA256
and sends ``webhook-signature: v1,<base64> [v1,<base64> ...]``. Any active secret
may match (rotation). Timestamps more than ±5 minutes from now are replays.
Comparisons are constant-time.

The headers are taken as the octets that arrived: the id is signed as those bytes
(a non-ASCII id included), never as a re-encoded string. Work per request is
bounded before any HMAC runs: an id of at most 255 bytes, a timestamp of at most 12
digits (a longer one is no plausible time, and ``now - int(...)`` past the float
range raised ``OverflowError``: a 500), at most 16 signatures in a header of at most
4 KiB (each costs an HMAC per active secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence

from shared.errors import Unauthorized

TOLERANCE_SECONDS = 5 * 60
MAX_ID_BYTES = 255
MAX_TIMESTAMP_DIGITS = 12
MAX_SIGNATURES = 16
MAX_SIGNATURE_HEADER_BYTES = 4096


def sign(secret: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one message (providers and tests use this; the id as UTF-8)."""
    return "v1," + _mac(secret, f"{webhook_id}.{timestamp}.".encode() + body).decode()


def signed_headers(secret: bytes, webhook_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """What a provider sends beside a JSON ``body``: Standard Webhooks' id, timestamp (now, unless
    given) and signature (for the tools that play a provider, and for tests)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {"content-type": "application/json", "webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, webhook_id, timestamp, body)}


def _mac(secret: bytes, message: bytes) -> bytes:
    """Base64 of the HMAC-SHA256; ``hmac.digest`` is the one-shot C path (every request pays this)."""
    return base64.b64encode(hmac.digest(secret, message, hashlib.sha256))


def verify(
    secrets: Sequence[bytes],
    webhook_id: bytes | None,
    timestamp: bytes | None,
    signature_header: bytes | None,
    body: bytes,
    now: float,
) -> None:
    """Raise ``Unauthorized`` unless one ``v1`` signature matches one secret, in time."""
    if not webhook_id or not timestamp or not signature_header:
        raise Unauthorized("missing webhook-id, webhook-timestamp or webhook-signature header")
    if len(webhook_id) > MAX_ID_BYTES:
        raise Unauthorized(f"webhook-id is longer than {MAX_ID_BYTES} bytes")
    if len(timestamp) > MAX_TIMESTAMP_DIGITS or not (timestamp.isascii() and timestamp.isdigit()):
        raise Unauthorized("webhook-timestamp must be unix seconds")
    if abs(int(now) - int(timestamp)) > TOLERANCE_SECONDS:
        raise Unauthorized("webhook-timestamp is outside the ±5 minute tolerance")
    if len(signature_header) > MAX_SIGNATURE_HEADER_BYTES:
        raise Unauthorized(f"webhook-signature is longer than {MAX_SIGNATURE_HEADER_BYTES} bytes")
    presented = [part[3:] for part in signature_header.split() if part.startswith(b"v1,")]
    if len(presented) > MAX_SIGNATURES:
        raise Unauthorized(f"webhook-signature lists more than {MAX_SIGNATURES} v1 signatures")
    message = webhook_id + b"." + timestamp + b"." + body
    require_a_match(presented, [_mac(secret, message) for secret in secrets])


def require_a_match(presented: Sequence[bytes], expected: Sequence[bytes]) -> None:
    """``Unauthorized`` unless a presented signature is an expected one; every pair is compared in
    constant time, with no early exit, so timing tells nothing about which came close."""
    matched = False
    for candidate in presented:
        for good in expected:
            matched |= hmac.compare_digest(candidate, good)
    if not matched:
        raise Unauthorized("no valid signature")
