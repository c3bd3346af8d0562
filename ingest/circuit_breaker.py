"""The circuit breaker's rules: a pure state machine (events and ``now`` in, decisions out).

    closed ──N consecutive failures──▶ open ──reset timeout──▶ half-open
      ▲                                  ▲                        │
      └────────── trial succeeded ───────┼──── trial failed ──────┘

Closed lets every call through. Open refuses them, saying how long until a trial.
Half-open lets at most ``half_open_max_calls`` trial calls through at once. The
actor in ``breaker_actor`` owns one of these and is its only user.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class State(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 5
    reset_timeout_seconds: float = 30.0
    half_open_max_calls: int = 1


@dataclass(frozen=True)
class Breaker:
    config: BreakerConfig
    state: State = State.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    trials: int = 0  # half-open calls in flight


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_seconds: float = 0.0


def request(breaker: Breaker, now: float) -> tuple[Breaker, Decision]:
    """May a call go through now?"""
    if breaker.state is State.OPEN:
        waited = now - breaker.opened_at
        if waited < breaker.config.reset_timeout_seconds:
            return breaker, Decision(False, breaker.config.reset_timeout_seconds - waited)
        breaker = replace(breaker, state=State.HALF_OPEN, trials=0)
    if breaker.state is State.HALF_OPEN:
        if breaker.trials >= breaker.config.half_open_max_calls:
            return breaker, Decision(False, 1.0)
        return replace(breaker, trials=breaker.trials + 1), Decision(True)
    return breaker, Decision(True)


def succeeded(breaker: Breaker, now: float) -> Breaker:
    return replace(breaker, state=State.CLOSED, failures=0, trials=0)


def failed(breaker: Breaker, now: float) -> Breaker:
    if breaker.state is State.HALF_OPEN:
        return replace(breaker, state=State.OPEN, opened_at=now, trials=0)
    failures = breaker.failures + 1
    if breaker.state is State.CLOSED and failures >= breaker.config.failure_threshold:
        return replace(breaker, state=State.OPEN, failures=failures, opened_at=now)
    return replace(breaker, failures=failures)
