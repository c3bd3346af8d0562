"""The one interface every webhook provider implements: verify the request, then map its body.

The endpoint runs the checks every provider shares (media type, size, a repeated auth
header), then ``verify`` (an ``Unauthorized`` or ``ProviderNotConfigured`` refuses the
request), then ``map``: the update the body stands for, or ``Ignored`` for an event the
provider sends that we do not act on. Both are synchronous and free of I/O, so the
endpoint stays one thin path and each provider is testable on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from shared.envelope import Webhook
from shared.stripe_events import Ignored

__all__ = ["Ignored", "Provider"]


class Provider(Protocol):
    @property
    def name(self) -> str:
        """A short label for logs and metrics."""
        ...

    @property
    def auth_headers(self) -> tuple[bytes, ...]:
        """The headers the signature depends on: each may appear at most once (else 401)."""
        ...

    def verify(self, headers: Mapping[bytes, bytes], body: bytes, now: float) -> None:
        """Raise ``Unauthorized`` unless the request is the provider's, signed within the tolerance."""
        ...

    def map(self, body: bytes) -> Webhook | Ignored:
        """The update of an authentic body; ``InvalidInput`` (400) or ``UnmappableEvent`` (422) if none."""
        ...
