"""Which failures of an ingest → api call are retried, and how long to wait between attempts.

Transient failures (connection errors, timeouts, 5xx) are retried; answers about
the event itself (404, 409, 422, 400) never are. Delays double from the base, are
capped, and vary by ±25 % so that many ingest processes do not retry in step.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar, TypeVarTuple

import tenacity
import trio

from shared.errors import BadGateway, GatewayTimeout, Unavailable
from shared.settings import Settings

T = TypeVar("T")
Args = TypeVarTuple("Args")


class TransientFailure(Exception):
    """One attempt failed in a way that may succeed on the next; carries the final error."""

    def __init__(self, final: BadGateway | GatewayTimeout) -> None:
        super().__init__(final.detail)
        self.final = final


@dataclass(frozen=True)
class JitteredBackoff:
    """base × 2^(attempt-1), capped at ``max_seconds``, times a uniform factor in [1-j, 1+j]."""

    base_seconds: float
    max_seconds: float
    jitter: float = 0.25
    rng: random.Random = random.Random()

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        delay: float = min(self.base_seconds * 2 ** (retry_state.attempt_number - 1), self.max_seconds)
        return delay * self.rng.uniform(1 - self.jitter, 1 + self.jitter)


def retrying(settings: Settings, rng: random.Random | None = None,
             sleep: Callable[[float], Awaitable[None]] = trio.sleep) -> tenacity.AsyncRetrying:
    """A fresh tenacity controller for one logical call of ingest's (trio); ``sleep`` waits out a
    delay (the forwarder's may end it early)."""
    return tenacity.AsyncRetrying(
        sleep=sleep,
        stop=tenacity.stop_after_attempt(settings.api_retry_attempts),
        wait=JitteredBackoff(settings.api_retry_base_delay_seconds, settings.api_retry_max_delay_seconds,
                             rng=rng or random.Random()),
        retry=tenacity.retry_if_exception_type(TransientFailure),
        reraise=True,
    )


async def patiently(function: Callable[[*Args], Awaitable[T]], *args: *Args, wait: JitteredBackoff,
                    on_retry: Callable[[tenacity.RetryCallState], None] | None = None) -> T:
    """``await function(*args)``, retried with ``wait`` for as long as it raises ``Unavailable``.

    For work that must not be skipped or dead-lettered because a dependency is down;
    the caller's cancel scope is the only way out.
    """
    async for attempt in tenacity.AsyncRetrying(
        wait=wait, retry=tenacity.retry_if_exception_type(Unavailable), reraise=True, before_sleep=on_retry,
    ):
        with attempt:
            return await function(*args)
    raise AssertionError("unreachable")  # pragma: no cover
