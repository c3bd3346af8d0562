"""The circuit breaker's rules: a pure state machine (events and ``now`` in, decisions out).

Everything that affects the breaker's state lives in this file, in one table. No
trio, no clock: the actor in ``breaker_actor`` owns one ``Breaker``, passes ``now``
in, and is its only user.

    closed ──N-th consecutive failure──▶ open ──a call after the reset timeout──▶ half-open
      ▲                                   ▲                                       │
      └───────────── trial succeeded ─────┼────────────── trial failed ───────────┘

Closed lets every call through. Open refuses them, saying how long until a trial.
Half-open lets at most ``half_open_max_calls`` trial calls through at once.

A call that is let through holds a ``Permit``: the breaker's generation when it was
admitted, and whether it is a half-open trial. Every state change starts a new
generation, and a report carrying an older one is ``STALE``: ignored. So a slow call
admitted before the circuit opened cannot close it, nor reopen a half-open one, when
it finally answers. A ``RELEASED`` permit (its caller was cancelled) frees its trial
slot and counts neither as a success nor as a failure.

Inputs are turned into one ``Event`` by the guards in ``request`` and ``report``
(threshold reached? reset timeout passed? trial slot free? generation current?);
``TRANSITIONS`` then says where each event leads. A pair missing from the table is
an illegal move and raises ``IllegalTransition``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

TRIALS_BUSY_RETRY_AFTER_SECONDS = 1.0  # half-open and every trial slot taken: ask again soon


class State(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Result(enum.Enum):
    """How a permitted call ended, as its caller reports it."""

    SUCCESS = "success"
    FAILURE = "failure"
    RELEASED = "released"  # the caller was cancelled: no verdict on the api


class Event(enum.Enum):
    CALLED = enum.auto()  # closed: a call admitted
    REFUSED = enum.auto()  # open before the reset timeout, or half-open with every trial slot taken
    TRIAL_STARTED = enum.auto()  # a half-open trial admitted (the first one after the reset timeout too)
    SUCCEEDED = enum.auto()
    FAILED = enum.auto()  # a failure below the threshold
    THRESHOLD_REACHED = enum.auto()  # the N-th consecutive failure
    RELEASED = enum.auto()
    TRIAL_SUCCEEDED = enum.auto()
    TRIAL_FAILED = enum.auto()
    TRIAL_RELEASED = enum.auto()
    STALE = enum.auto()  # a report from an older generation


CLOSED, OPEN, HALF_OPEN = State.CLOSED, State.OPEN, State.HALF_OPEN
TRANSITIONS: Mapping[tuple[State, Event], State] = {
    (CLOSED, Event.CALLED): CLOSED,
    (CLOSED, Event.SUCCEEDED): CLOSED,
    (CLOSED, Event.FAILED): CLOSED,
    (CLOSED, Event.THRESHOLD_REACHED): OPEN,
    (CLOSED, Event.RELEASED): CLOSED,
    (CLOSED, Event.STALE): CLOSED,
    (OPEN, Event.REFUSED): OPEN,
    (OPEN, Event.TRIAL_STARTED): HALF_OPEN,
    (OPEN, Event.STALE): OPEN,
    (HALF_OPEN, Event.TRIAL_STARTED): HALF_OPEN,
    (HALF_OPEN, Event.REFUSED): HALF_OPEN,
    (HALF_OPEN, Event.TRIAL_SUCCEEDED): CLOSED,
    (HALF_OPEN, Event.TRIAL_FAILED): OPEN,
    (HALF_OPEN, Event.TRIAL_RELEASED): HALF_OPEN,
    (HALF_OPEN, Event.STALE): HALF_OPEN,
}


class IllegalTransition(Exception):
    """A report the breaker cannot have asked for (e.g. a current-generation report while open)."""


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 5
    reset_timeout_seconds: float = 30.0
    half_open_max_calls: int = 1
    # Retry-After = the wait the rules say + a random share of this: callers refused together are
    # not all sent back at the same instant (the half-open moment) to a just-recovered api
    retry_after_spread_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not self.retry_after_spread_seconds >= 0:  # also refuses NaN
            raise ValueError("retry_after_spread_seconds must be ≥ 0: a Retry-After before the trial helps no one")


@dataclass(frozen=True)
class Permit:
    generation: int
    trial: bool


@dataclass(frozen=True)
class Breaker:
    config: BreakerConfig
    state: State = State.CLOSED
    generation: int = 0  # bumped by every state change
    failures: int = 0  # consecutive, while closed
    opened_at: float = 0.0
    trials: int = 0  # half-open trial permits not yet reported


@dataclass(frozen=True)
class Decision:
    permit: Permit | None  # None: refused
    retry_after_seconds: float = 0.0

    @property
    def allowed(self) -> bool:
        return self.permit is not None


# What an event does to the counters of the state it leaves the breaker in.
_COUNTERS: Mapping[Event, Callable[[Breaker], Breaker]] = {
    Event.SUCCEEDED: lambda b: replace(b, failures=0),
    Event.FAILED: lambda b: replace(b, failures=b.failures + 1),
    Event.TRIAL_STARTED: lambda b: replace(b, trials=b.trials + 1),
    Event.TRIAL_RELEASED: lambda b: replace(b, trials=b.trials - 1),
}


def step(breaker: Breaker, event: Event, now: float) -> Breaker:
    """The table's move for ``event``; a state change starts a generation with fresh counters."""
    target = TRANSITIONS.get((breaker.state, event))
    if target is None:
        raise IllegalTransition(f"{event.name} while {breaker.state.value}")
    if target is not breaker.state:
        breaker = Breaker(breaker.config, target, breaker.generation + 1,
                          opened_at=now if target is OPEN else breaker.opened_at)
    counters = _COUNTERS.get(event)
    return breaker if counters is None else counters(breaker)


def request(breaker: Breaker, now: float) -> tuple[Breaker, Decision]:
    """May a call go through now? If so, the decision carries its permit."""
    event, retry_after = _request_event(breaker, now)
    breaker = step(breaker, event, now)
    if event is Event.REFUSED:
        return breaker, Decision(None, retry_after)
    return breaker, Decision(Permit(breaker.generation, trial=event is Event.TRIAL_STARTED))


def refusal(breaker: Breaker, now: float) -> float | None:
    """The Retry-After a call asked for now would be refused with, else None — without asking:
    nothing changes (a half-open trial slot is not taken)."""
    event, retry_after = _request_event(breaker, now)
    return retry_after if event is Event.REFUSED else None


def trial_at(breaker: Breaker) -> float | None:
    """When an open circuit lets its trial through (the next ask at or after it starts one); None
    unless open."""
    return breaker.opened_at + breaker.config.reset_timeout_seconds if breaker.state is OPEN else None


def report(breaker: Breaker, permit: Permit, result: Result, now: float) -> Breaker:
    """How a permitted call ended; reports of an older generation change nothing."""
    return step(breaker, _report_event(breaker, permit, result), now)


def _request_event(breaker: Breaker, now: float) -> tuple[Event, float]:
    if breaker.state is CLOSED:
        return Event.CALLED, 0.0
    if breaker.state is OPEN:
        waited = now - breaker.opened_at
        if waited < breaker.config.reset_timeout_seconds:
            return Event.REFUSED, breaker.config.reset_timeout_seconds - waited
        return Event.TRIAL_STARTED, 0.0
    if breaker.trials >= breaker.config.half_open_max_calls:
        return Event.REFUSED, TRIALS_BUSY_RETRY_AFTER_SECONDS
    return Event.TRIAL_STARTED, 0.0


_REPORTS: Mapping[tuple[bool, Result], Event] = {
    (False, Result.SUCCESS): Event.SUCCEEDED,
    (False, Result.FAILURE): Event.FAILED,
    (False, Result.RELEASED): Event.RELEASED,
    (True, Result.SUCCESS): Event.TRIAL_SUCCEEDED,
    (True, Result.FAILURE): Event.TRIAL_FAILED,
    (True, Result.RELEASED): Event.TRIAL_RELEASED,
}


def _report_event(breaker: Breaker, permit: Permit, result: Result) -> Event:
    if permit.generation > breaker.generation:
        raise IllegalTransition(f"a permit of generation {permit.generation} from the future")
    if permit.generation < breaker.generation:
        return Event.STALE
    if permit.trial and breaker.trials == 0:
        raise IllegalTransition("a trial reported with no trial in flight (reported twice?)")
    event = _REPORTS[permit.trial, result]
    if event is Event.FAILED and breaker.failures + 1 >= breaker.config.failure_threshold:
        return Event.THRESHOLD_REACHED
    return event
