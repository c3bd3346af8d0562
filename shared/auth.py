"""Bearer tokens, compared in constant time against every accepted token."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from shared.errors import Unauthorized
from shared.settings import Secret


def check_bearer(authorization: str | None, accepted: Sequence[Secret]) -> None:
    """Raise ``Unauthorized`` unless the header carries one of ``accepted``."""
    scheme, _, token = (authorization or "").partition(" ")
    presented = token.strip().encode()
    matched = False
    for secret in accepted:  # no early exit: timing does not tell which token matched
        matched |= hmac.compare_digest(presented, secret.reveal().encode())
    if scheme.lower() != "bearer" or not presented or not matched:
        raise Unauthorized("a valid bearer token is required")
