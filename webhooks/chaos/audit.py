"""The audit of a chaos run: what was sent, what the provider was told, what the shards and DLQs hold.

Pure: the runner gathers the facts (every attempt of the load, every stored event row, the
final statuses, every dead letter) and this module judges them. The definitions:

- **lost**: answered 2xx at least once, yet no event row and no dead letter holds it;
- **duplicated**: more than one event row for one (entity, provider_event_id);
- **order violation**: an order or dispute whose rows were inserted out of chain order, or
  stored as not applied (stale: a later event got there first), or whose final status is not
  the status of its latest stored event;
- **dead letters** are *expected* when they are the poison records the run wrote on purpose
  (with the reason they should get), and *caused by the run* when they hold a load event;
- **other 5xx**: every 5xx answer except a 503 carrying ``Retry-After`` (the documented one);
- **no answer**: every request that got none (connect error, reset, the provider's 30 s
  timeout). Always a finding: no fault stops ingest itself, and ingest is meant to answer
  through all of them — 503 + ``Retry-After`` while the api is down or its database is, a
  timely 503 while the broker is frozen (SIGSTOP) — so a connection refused or an answer
  never given is ingest failing its callers, not the fault showing through;
- **breaker-open answers**: circuit-open 503s to requests that arrived while the provider had
  been told the circuit is open: a circuit-open answer finished before, and no 2xx *to a
  request started after that answer* finished in between (a 2xx to a request that began
  before the circuit opened says nothing about the circuit since). A request that arrived
  while the circuit was closed and met it open on a retry waited for its failed attempts
  first: it is not a fail-fast answer and is left out of their latency — ingest says so itself
  (the problem's ``api_called``), which also leaves out a half-open trial that failed;
- **the probe's breaker-open answers**: the same, for the fail-fast probe's attempts
  (``probe.py``: one signed webhook about an unknown order at a time, from a process of its
  own), told open by any circuit-open answer, the load's or the probe's. The load's latencies
  are timed by a process that runs ~1,000 chains on the cores ingest uses: they hold its own
  scheduling too. The probe's are what a caller not itself overloaded waits;
- **offered load**: first attempts (an event's first POST) and chain starts (a chain's first
  event's) per second inside the fault windows and outside them, over the load window: the
  provider's load is open-loop, and these show it held through the faults;
- **recovery**: per fault window, from its end until the first 2xx answer to an attempt started
  after it and, in kafka mode, every event answered 2xx before that end is stored. The run's
  recovery is the worst window's; a window followed by the next one before it recovered is
  part of that next one (ten kills in a row are over when the last one is); a run whose
  acknowledged events are never all stored (or dead-lettered) never recovered (``inf``);
- **longest wait**: the most time between an event's first 2xx and its row (kafka mode: how long
  the backlog held an acknowledged event).
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field

from webhooks.chaos.plan import PlannedEvent

CIRCUIT_OPEN_TYPE = "urn:payment-webhooks:problem:circuit-open"


def read_problem(status: int, content_type: str, body: bytes) -> tuple[str | None, bool]:
    """An answer's problem ``type`` (None if it is not a problem of ours) and its ``api_called``."""
    if status < 400 or "json" not in content_type:
        return None, False
    try:
        parsed = json.loads(body)
    except ValueError:
        return None, False
    if not isinstance(parsed, dict):
        return None, False
    kind = parsed.get("type")
    return (kind if isinstance(kind, str) else None), parsed.get("api_called") is True


@dataclass(frozen=True)
class Attempt:
    """One POST of one webhook; ``status`` is None when no answer came (connect error, timeout)."""

    provider_event_id: str
    started_at: float  # wall clock, seconds since the epoch
    finished_at: float
    status: int | None
    retry_after: bool = False
    problem_type: str | None = None
    resend: bool = False  # the provider sent it again after a 2xx
    api_called: bool = False  # circuit-open, but only after the webhook's own call had failed

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def latency_ms(self) -> float:
        return (self.finished_at - self.started_at) * 1000


@dataclass(frozen=True)
class StoredRow:
    """An event row; ``sequence`` orders rows by insertion (order_events.id, dispute_events.stored_at)."""

    kind: str
    entity_id: str
    provider_event_id: str
    status: str
    applied: bool
    sequence: float
    stored_at: float


@dataclass(frozen=True)
class Letter:
    """A dead letter as the audit needs it: its reason, and which event or poison record it holds."""

    reason: str
    provider_event_id: str | None
    key: str | None


@dataclass(frozen=True)
class Facts:
    planned: Sequence[PlannedEvent]
    attempts: Sequence[Attempt]
    rows: Sequence[StoredRow]
    final_status: Mapping[str, str]  # order_id / dispute_id → status
    letters: Sequence[Letter] = ()
    poison: Mapping[str, str] = field(default_factory=dict)  # record key → the reason it should get
    fault_windows: Sequence[tuple[float, float]] = ()
    sync_mode: bool = False
    load_window: tuple[float, float] | None = None  # wall clock: the first chain's start → the last's
    probe: Sequence[Attempt] = ()  # the fail-fast probe's attempts (sync modes), not the load's


@dataclass(frozen=True)
class OfferedLoad:
    """Per second, inside the fault windows and outside them (None: no such time in the load window)."""

    first_attempts_in_faults: float | None
    first_attempts_outside: float | None
    chain_starts_in_faults: float | None
    chain_starts_outside: float | None


@dataclass(frozen=True)
class Audit:
    sent: int
    answered_2xx: int
    stored_once: int
    lost: tuple[str, ...]
    duplicated: tuple[str, ...]
    order_violations: tuple[str, ...]
    unacknowledged: tuple[str, ...]
    unexpected_rows: int
    dlq_expected: Mapping[str, int]
    dlq_caused: Mapping[str, int]
    poison_missing: tuple[str, ...]
    status_codes: Mapping[str, int]  # "202", "503", "none" (no answer) …
    documented_503: int
    other_5xx: Mapping[str, int]
    no_answer: int
    breaker_open_answers: int
    breaker_open_p50_ms: float | None
    breaker_open_p99_ms: float | None
    recovery_seconds: float | None
    longest_wait_seconds: float | None
    offered: OfferedLoad | None = None
    probe_open_answers: int = 0
    probe_open_p50_ms: float | None = None
    probe_open_p99_ms: float | None = None
    probe_status_codes: Mapping[str, int] = field(default_factory=dict)

    def findings(self, recovery_target_seconds: float, breaker_p99_target_ms: float = 10.0) -> list[str]:
        """What misses the targets; empty when the run passes."""
        counts = [("lost", len(self.lost)), ("duplicated", len(self.duplicated)),
                  ("order violations", len(self.order_violations)), ("unacknowledged", len(self.unacknowledged)),
                  ("dead letters caused by the run", sum(self.dlq_caused.values())),
                  ("poison records not dead-lettered as expected", len(self.poison_missing)),
                  ("5xx other than 503 + Retry-After", sum(self.other_5xx.values())),
                  ("no answer", self.no_answer)]
        found = [f"{what} {count}" for what, count in counts if count]
        if self.recovery_seconds == math.inf:
            found.append("never recovered")
        elif self.recovery_seconds is not None and self.recovery_seconds > recovery_target_seconds:
            found.append(f"recovery {self.recovery_seconds:.1f} s > {recovery_target_seconds:.0f} s")
        judged, by = self.judged_open_p99()
        if judged is not None and judged > breaker_p99_target_ms:
            found.append(f"breaker-open p99 {judged:.1f} ms > {breaker_p99_target_ms:.0f} ms ({by})")
        return found

    def judged_open_p99(self) -> tuple[float | None, str]:
        """The breaker-open p99 the verdict holds to its target, and whose: the probe's, a caller not
        itself overloaded (the load's also holds its own event loop's delays); the load's only when the
        probe saw no open circuit, so a probe that did not run cannot pass a slow breaker."""
        if self.probe_open_answers:
            return self.probe_open_p99_ms, "probe"
        return self.breaker_open_p99_ms, "load, no probe answer"


def percentile(values: Iterable[float], fraction: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def _order_violation(entity: str, rows: list[StoredRow], steps: Mapping[str, int], final: str | None) -> str | None:
    rows = sorted(rows, key=lambda row: row.sequence)
    inserted = [steps[row.provider_event_id] for row in rows]
    if inserted != sorted(inserted):
        return f"{entity}: rows inserted in chain steps {inserted}"
    if stale := [row.provider_event_id for row in rows if not row.applied]:
        return f"{entity}: stored as not applied (stale): {', '.join(stale)}"
    if final != rows[-1].status:
        return f"{entity}: final status {final!r}, latest stored event {rows[-1].status!r}"
    return None


def _fail_fast_latencies(told: Sequence[Attempt], judged: Sequence[Attempt]) -> list[float]:
    """The latencies of ``judged``'s circuit-open answers to requests that arrived while the answers
    of ``told`` said the circuit is open (see the module docstring)."""
    open_finishes = sorted(a.finished_at for a in told if a.problem_type == CIRCUIT_OPEN_TYPE)
    oks = sorted((a.finished_at, a.started_at) for a in told if a.ok)
    ok_finishes = [finished for finished, _ in oks]
    latest_ok_start = list(itertools.accumulate((started for _, started in oks), max))  # of 2xx finished so far
    latencies = []
    for attempt in judged:
        if attempt.problem_type != CIRCUIT_OPEN_TYPE or attempt.api_called:
            continue
        opened = bisect.bisect_left(open_finishes, attempt.started_at)
        if not opened:
            continue  # nobody had been told the circuit is open
        told_open = open_finishes[opened - 1]
        closed = bisect.bisect_left(ok_finishes, attempt.started_at)  # 2xx finished before this one started
        if not closed or latest_ok_start[closed - 1] < told_open:
            latencies.append(attempt.latency_ms)
    return latencies


def _merged(windows: Iterable[tuple[float, float]], within: tuple[float, float]) -> list[tuple[float, float]]:
    low, high = within
    clipped = sorted((max(a, low), min(b, high)) for a, b in windows if min(b, high) > max(a, low))
    merged: list[tuple[float, float]] = []
    for a, b in clipped:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def offered_load(facts: Facts) -> OfferedLoad | None:
    """First attempts and chain starts a second, in the fault windows and outside them (within the load window)."""
    if facts.load_window is None:
        return None
    low, high = facts.load_window
    windows = _merged(facts.fault_windows, facts.load_window)
    starts = [a for a, _ in windows]
    steps = {e.provider_event_id: e.step for e in facts.planned}
    first: dict[str, float] = {}
    for attempt in facts.attempts:
        if not attempt.resend and attempt.started_at < first.get(attempt.provider_event_id, math.inf):
            first[attempt.provider_event_id] = attempt.started_at
    counts = {(True, False): 0, (True, True): 0, (False, False): 0, (False, True): 0}  # (in a fault, chain start)
    for event, at in first.items():
        if low <= at < high:
            index = bisect.bisect_right(starts, at) - 1
            counts[(index >= 0 and at < windows[index][1], steps.get(event) == 0)] += 1
    in_faults = sum(b - a for a, b in windows)
    outside = (high - low) - in_faults

    def rate(count: int, seconds: float) -> float | None:
        return count / seconds if seconds > 0 else None

    return OfferedLoad(rate(counts[(True, False)] + counts[(True, True)], in_faults),
                       rate(counts[(False, False)] + counts[(False, True)], outside),
                       rate(counts[(True, True)], in_faults), rate(counts[(False, True)], outside))


def _recovered_at(facts: Facts, end: float, first_ok: Mapping[str, float],
                  stored_at: Mapping[str, float], dead_lettered: Set[str]) -> float | None:
    """When the system was whole again after a fault ending at ``end``; None if it never was."""
    answering = min((a.finished_at for a in facts.attempts if a.ok and a.started_at >= end), default=None)
    if facts.sync_mode or answering is None:
        return answering
    owed = [e for e, at in first_ok.items() if at <= end and e not in dead_lettered]
    if any(e not in stored_at for e in owed):
        return None
    return max([answering, *(stored_at[e] for e in owed)])


def _recovery(facts: Facts, first_ok: Mapping[str, float], stored_at: Mapping[str, float],
              dead_lettered: Set[str]) -> float | None:
    """The worst window's (``inf``: never); a window the next one interrupted counts as part of that one."""
    windows = sorted(facts.fault_windows)
    worst = None
    for index, (_, end) in enumerate(windows):
        recovered_at = _recovered_at(facts, end, first_ok, stored_at, dead_lettered)
        if index + 1 < len(windows) and (recovered_at is None or windows[index + 1][0] < recovered_at):
            continue
        worst = max(worst or 0.0, math.inf if recovered_at is None else recovered_at - end)
    return worst


def audit(facts: Facts) -> Audit:
    planned = {event.provider_event_id: event for event in facts.planned}
    attempted = {a.provider_event_id for a in facts.attempts}
    first_ok: dict[str, float] = {}
    for attempt in sorted(facts.attempts, key=lambda a: a.finished_at):
        if attempt.ok:
            first_ok.setdefault(attempt.provider_event_id, attempt.finished_at)
    rows_of: dict[str, list[StoredRow]] = defaultdict(list)
    for row in facts.rows:
        rows_of[row.provider_event_id].append(row)
    letter_events = {letter.provider_event_id for letter in facts.letters if letter.provider_event_id in planned}
    stored_at = {event: min(r.stored_at for r in rows) for event, rows in rows_of.items()}
    by_entity: dict[str, list[StoredRow]] = defaultdict(list)
    for row in facts.rows:
        if row.provider_event_id in planned:
            by_entity[row.entity_id].append(row)
    steps = {event: planned[event].step for event in planned}
    violations = [v for entity, rows in sorted(by_entity.items())
                  if (v := _order_violation(entity, rows, steps, facts.final_status.get(entity)))]
    codes = Counter("none" if a.status is None else str(a.status) for a in facts.attempts)
    documented = sum(1 for a in facts.attempts if a.status == 503 and a.retry_after)
    other = Counter(str(a.status) for a in facts.attempts
                    if a.status is not None and a.status >= 500 and not (a.status == 503 and a.retry_after))
    open_answers = _fail_fast_latencies(facts.attempts, facts.attempts)
    probe_answers = _fail_fast_latencies([*facts.attempts, *facts.probe], facts.probe)
    poison_found = {(letter.key, letter.reason) for letter in facts.letters if letter.key in facts.poison}
    return Audit(
        sent=len(attempted & planned.keys()),
        answered_2xx=len(first_ok),
        stored_once=sum(1 for event in planned if len(rows_of.get(event, ())) == 1),
        lost=tuple(sorted(e for e in first_ok if e not in rows_of and e not in letter_events)),
        duplicated=tuple(sorted(e for e, rows in rows_of.items() if len(rows) > 1)),
        order_violations=tuple(violations),
        unacknowledged=tuple(sorted((attempted & planned.keys()) - first_ok.keys())),
        unexpected_rows=sum(len(rows) for event, rows in rows_of.items() if event not in planned),
        dlq_expected=dict(Counter(letter.reason for letter in facts.letters if letter.key in facts.poison)),
        dlq_caused=dict(Counter(letter.reason for letter in facts.letters if letter.key not in facts.poison)),
        poison_missing=tuple(sorted(key for key, reason in facts.poison.items() if (key, reason) not in poison_found)),
        status_codes=dict(codes),
        documented_503=documented,
        other_5xx=dict(other),
        no_answer=codes.get("none", 0),
        breaker_open_answers=len(open_answers),
        breaker_open_p50_ms=percentile(open_answers, 0.5),
        breaker_open_p99_ms=percentile(open_answers, 0.99),
        recovery_seconds=_recovery(facts, first_ok, stored_at, letter_events),
        longest_wait_seconds=None if facts.sync_mode else max(
            (stored_at[e] - at for e, at in first_ok.items() if e in stored_at), default=None),
        offered=offered_load(facts),
        probe_open_answers=len(probe_answers),
        probe_open_p50_ms=percentile(probe_answers, 0.5),
        probe_open_p99_ms=percentile(probe_answers, 0.99),
        probe_status_codes=dict(Counter("none" if a.status is None else str(a.status) for a in facts.probe)),
    )
