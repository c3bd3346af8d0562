"""Bearer tokens, compared in constant time against every accepted token.

A request carries its ``Authorization`` exactly once. A repeated one is refused (401), like
ingest's repeated webhook auth headers, rather than one copy picked: Quart kept the first,
the thin ASGI endpoint and the gRPC metadata dict the last, and a proxy may keep either.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from shared.errors import Unauthorized
from shared.secret import Secret


def check_bearer(authorizations: Sequence[str], accepted: Sequence[Secret]) -> None:
    """Raise ``Unauthorized`` unless ``authorizations`` (every ``Authorization`` value the request
    carries) is one ``Bearer`` value with one of ``accepted``."""
    if len(authorizations) > 1:
        raise Unauthorized("Authorization may appear only once")
    scheme, _, token = (authorizations[0] if authorizations else "").partition(" ")
    presented = token.strip().encode()
    matched = False
    for secret in accepted:  # no early exit: timing does not tell which token matched
        matched |= hmac.compare_digest(presented, secret.reveal().encode())
    if scheme.lower() != "bearer" or not presented or not matched:
        raise Unauthorized("a valid bearer token is required")
