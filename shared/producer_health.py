"""Whether the shared Kafka producer can be trusted: a pure state machine (no trio, no librdkafka).

Everything that moves it lives in ``TRANSITIONS``; events and ``now`` go in, a new frozen
``Health`` comes out, and an event the table does not list for a phase raises.

    HEALTHY ──Fatal──▶ PENDING ──Recreated──▶ RECOVERING ──Delivered / IdAssigned──▶ HEALTHY
                          ▲                        │
                          └──────────Fatal─────────┘

- ``Fatal``: the producer cannot deliver again by itself (a fatal librdkafka error, or a
  fenced idempotent producer); it must be replaced.
- ``Recreated``: a fresh producer took its place. The first recreation after a delivered
  record is immediate; each further one without a delivery in between waits twice as long
  as the one before (``BACKOFF``), so a broker that keeps fencing cannot make us spin.
- ``Delivered`` (a record was acknowledged) or ``IdAssigned`` (the fresh producer got its
  producer id from the broker): it works again. Only a delivery resets the backoff.

``problem()`` is what ``/readyz`` shows while the phase is not HEALTHY.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Phase(Enum):
    HEALTHY = "healthy"
    PENDING = "recreation pending"  # a fatal error seen; the replacement waits for its backoff
    RECOVERING = "recovering"  # replaced; not yet confirmed by the broker


@dataclass(frozen=True)
class Backoff:
    first_seconds: float = 1.0
    max_seconds: float = 5.0  # "accepting again within seconds" of the broker's return, even after many fences

    def after(self, strikes: int) -> float:
        """The wait before the recreation that follows ``strikes`` recreations without a delivery."""
        return 0.0 if strikes == 0 else min(self.first_seconds * 2 ** (strikes - 1), self.max_seconds)


BACKOFF = Backoff()


@dataclass(frozen=True)
class Fatal:
    reason: str


@dataclass(frozen=True)
class Recreated:
    pass


@dataclass(frozen=True)
class Delivered:
    pass


@dataclass(frozen=True)
class IdAssigned:
    pass


Event = Fatal | Recreated | Delivered | IdAssigned


class IllegalTransition(RuntimeError):
    pass


@dataclass(frozen=True)
class Health:
    phase: Phase = Phase.HEALTHY
    reason: str = ""
    strikes: int = 0  # recreations since a record was last delivered
    not_before: float = 0.0  # earliest moment of the next recreation
    recreations: int = 0
    backoff: Backoff = BACKOFF

    def step(self, event: Event, now: float) -> Health:
        move = TRANSITIONS.get((self.phase, type(event)))
        if move is None:
            raise IllegalTransition(f"{type(event).__name__} while {self.phase.value}")
        return move(self, event, now)

    def due(self, now: float) -> bool:
        """Whether the producer should be replaced now."""
        return self.phase is Phase.PENDING and now >= self.not_before

    def problem(self) -> str | None:
        if self.phase is Phase.PENDING:
            return f"producer recreation pending after fatal error: {self.reason}"
        if self.phase is Phase.RECOVERING:
            return f"producer recreated after fatal error (until the broker confirms it): {self.reason}"
        return None


def _fatal(health: Health, event: Fatal, now: float) -> Health:  # noqa: ARG001 - the table's signature
    return dataclasses.replace(health, phase=Phase.PENDING, reason=event.reason)


def _recreated(health: Health, event: Recreated, now: float) -> Health:  # noqa: ARG001
    strikes = health.strikes + 1
    return dataclasses.replace(health, phase=Phase.RECOVERING, strikes=strikes, recreations=health.recreations + 1,
                               not_before=now + health.backoff.after(strikes))


def _delivered(health: Health, event: Delivered, now: float) -> Health:  # noqa: ARG001
    return dataclasses.replace(health, phase=Phase.HEALTHY, reason="", strikes=0, not_before=0.0)


def _confirmed(health: Health, event: IdAssigned, now: float) -> Health:  # noqa: ARG001
    return dataclasses.replace(health, phase=Phase.HEALTHY, reason="")


def _unchanged(health: Health, event: Event, now: float) -> Health:  # noqa: ARG001
    return health


HEALTHY, PENDING, RECOVERING = Phase.HEALTHY, Phase.PENDING, Phase.RECOVERING
# A move's event parameter is Any: each move takes the event type it is keyed by (``step`` looks
# it up by ``type(event)``), which a Callable over the union of events cannot say.
TRANSITIONS: dict[tuple[Phase, type[Event]], Callable[[Health, Any, float], Health]] = {
    (HEALTHY, Fatal): _fatal,
    (HEALTHY, Delivered): _delivered,  # resets the backoff after an IdAssigned recovery
    (HEALTHY, IdAssigned): _unchanged,
    (PENDING, Fatal): _unchanged,  # the first reason stands
    (PENDING, Recreated): _recreated,
    (PENDING, Delivered): _unchanged,  # a doomed producer's last acks do not revive it
    (PENDING, IdAssigned): _unchanged,
    (RECOVERING, Fatal): _fatal,
    (RECOVERING, Delivered): _delivered,
    (RECOVERING, IdAssigned): _confirmed,
}
