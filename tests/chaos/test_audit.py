"""The chaos audit judges facts it is given: each finding it must report, and a clean run it must pass."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace

from webhooks.chaos.audit import (
    CIRCUIT_OPEN_TYPE,
    Attempt,
    Facts,
    Letter,
    OfferedLoad,
    StoredRow,
    audit,
    read_problem,
)
from webhooks.chaos.plan import Chain, chain, chains

START = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


class _AlwaysTail:
    """A random source that gives every chain a chargeback (roll 0.5, then the first choice)."""

    def random(self) -> float:
        return 0.5

    def choice(self, options: tuple[str, ...]) -> str:
        return options[0]


def _chain() -> Chain:
    return chain("r", 0, 1, START, _AlwaysTail())  # type: ignore[arg-type]


def _clean(c: Chain, *, t: float = 100.0) -> Facts:
    attempts = [Attempt(e.provider_event_id, t + i, t + i + 0.01, 202) for i, e in enumerate(c.events)]
    rows = [StoredRow(e.kind, e.entity_id, e.provider_event_id, e.status, True, i, t + i + 0.05)
            for i, e in enumerate(c.events)]
    final = {c.order_id: "paid", c.events[-1].entity_id: c.events[-1].status}
    return Facts(c.events, attempts, rows, final)


def test_the_plan_sends_orders_then_an_optional_tail_in_time_order() -> None:
    planned = chains("r", 200, 50, START)
    statuses = {tuple(e.status for e in c.events) for c in planned}
    assert ("authorized", "paid") in statuses and ("authorized", "paid", "refunded") in statuses
    assert any(s[2:4] == ("opened", "evidence_required") for s in statuses)
    for c in planned:
        times = [str(e.payload["occurred_at"]) for e in c.events]
        assert times == sorted(times) and len(set(times)) == len(times)
    assert len({c.user_id for c in planned}) == 50


def test_a_clean_run_passes() -> None:
    result = audit(_clean(_chain()))
    assert (result.sent, result.answered_2xx, result.stored_once) == (6, 6, 6)
    assert result.findings(recovery_target_seconds=10) == []


def test_an_acknowledged_event_neither_stored_nor_dead_lettered_is_lost() -> None:
    c = _chain()
    facts = _clean(c)
    missing = c.events[3].provider_event_id
    lost = replace(facts, rows=[r for r in facts.rows if r.provider_event_id != missing])
    assert audit(lost).lost == (missing,)
    assert "lost 1" in audit(lost).findings(10)
    dead_lettered = replace(lost, letters=[Letter("invalid_transition", missing, "usr_r_0")])
    result = audit(dead_lettered)
    assert result.lost == () and result.dlq_caused == {"invalid_transition": 1}
    assert "dead letters caused by the run 1" in result.findings(10)


def test_an_event_stored_twice_is_duplicated() -> None:
    facts = _clean(_chain())
    twice = replace(facts, rows=[*facts.rows, replace(facts.rows[1], sequence=99)])
    result = audit(twice)
    assert result.duplicated == (facts.rows[1].provider_event_id,)
    assert result.stored_once == 5


def test_rows_inserted_out_of_chain_order_are_a_violation() -> None:
    facts = _clean(_chain())
    swapped = list(facts.rows)
    swapped[2], swapped[3] = replace(swapped[2], sequence=3), replace(swapped[3], sequence=2)
    result = audit(replace(facts, rows=swapped))
    assert result.order_violations == ("dsp_r_0: rows inserted in chain steps [3, 2, 4, 5]",)


def test_a_stale_row_or_a_wrong_final_status_is_a_violation() -> None:
    facts = _clean(_chain())
    stale = [replace(facts.rows[0], applied=False), *facts.rows[1:]]
    assert "stale" in audit(replace(facts, rows=stale)).order_violations[0]
    wrong = {**facts.final_status, "ord_r_0": "authorized"}
    assert "final status 'authorized'" in audit(replace(facts, final_status=wrong)).order_violations[0]


def test_only_a_503_with_retry_after_is_a_documented_5xx() -> None:
    facts = _clean(_chain())
    pe = facts.planned[0].provider_event_id
    answers = [Attempt(pe, 1, 1.002, 503, retry_after=True, problem_type=CIRCUIT_OPEN_TYPE),
               Attempt(pe, 1.5, 1.504, 503, retry_after=True, problem_type=CIRCUIT_OPEN_TYPE),
               Attempt(pe, 2, 2.1, 502), Attempt(pe, 3, 3.5, None), Attempt(pe, 4, 4.1, 500)]
    result = audit(replace(facts, attempts=[*answers, *facts.attempts]))
    assert result.documented_503 == 2 and result.other_5xx == {"502": 1, "500": 1}
    assert result.status_codes["none"] == 1
    assert result.breaker_open_answers == 1 and round(result.breaker_open_p99_ms or 0, 3) == 4.0
    assert "5xx other than 503 + Retry-After 2" in result.findings(10)


def test_an_event_never_answered_2xx_is_unacknowledged_not_lost() -> None:
    facts = _clean(_chain())
    last = facts.planned[-1].provider_event_id
    failing = [a if a.provider_event_id != last else replace(a, status=503, retry_after=True) for a in facts.attempts]
    rows = [r for r in facts.rows if r.provider_event_id != last]
    final = {**facts.final_status, facts.planned[-1].entity_id: facts.planned[-2].status}
    result = audit(replace(facts, attempts=failing, rows=rows, final_status=final))
    assert result.unacknowledged == (last,) and result.lost == () and result.order_violations == ()


def test_poison_records_are_expected_only_with_their_reason() -> None:
    facts = replace(_clean(_chain()), poison={"p1": "schema", "p2": "not_found"})
    letters = [Letter("schema", None, "p1"), Letter("schema", None, "p2")]
    result = audit(replace(facts, letters=letters))
    assert result.dlq_expected == {"schema": 2} and result.poison_missing == ("p2",)


def test_recovery_kafka_waits_for_every_acknowledged_event_to_be_stored() -> None:
    facts = _clean(_chain(), t=100.0)  # answered at 100.01 … 105.01, stored 0.04 s later
    late = [replace(r, stored_at=112.0) if r.provider_event_id == facts.planned[2].provider_event_id else r
            for r in facts.rows]
    result = audit(replace(facts, rows=late, fault_windows=[(101.5, 102.5)]))
    assert result.recovery_seconds == 112.0 - 102.5
    assert "recovery 9.5 s > 5 s" in result.findings(recovery_target_seconds=5)


def test_recovery_sync_is_the_first_2xx_to_an_attempt_after_the_fault() -> None:
    facts = replace(_clean(_chain(), t=100.0), sync_mode=True, fault_windows=[(100.5, 102.5)])
    assert round(audit(facts).recovery_seconds or 0, 3) == round(103.01 - 102.5, 3)


def test_recovery_of_back_to_back_faults_counts_from_the_last_one() -> None:
    facts = _clean(_chain(), t=100.0)
    late = [replace(r, stored_at=106.0) if r.provider_event_id == facts.planned[1].provider_event_id else r
            for r in facts.rows]
    # the first window's backlog is stored at 106, after the second window began: one fault
    result = audit(replace(facts, rows=late, fault_windows=[(101.2, 101.5), (103.0, 103.5)]))
    assert result.recovery_seconds == 106.0 - 103.5
    assert result.longest_wait_seconds == 106.0 - 101.01


def test_a_circuit_open_answer_after_failed_attempts_is_not_a_fail_fast_answer() -> None:
    facts = _clean(_chain(), t=100.0)  # 2xx answers finish at 100.01, 101.01, …
    pe = facts.planned[0].provider_event_id
    def open_(started: float, finished: float) -> Attempt:
        return Attempt(pe, started, finished, 503, retry_after=True, problem_type=CIRCUIT_OPEN_TYPE)

    answers = [open_(100.5, 104.5),  # arrived closed, retried into an open circuit: slow
               open_(101.5, 101.503),  # no circuit-open answer before it: left out
               open_(101.6, 101.606),  # told open at 101.503, no 2xx since: fail-fast
               open_(102.5, 102.509)]  # a 2xx finished at 102.01 after the last open: left out
    result = audit(replace(facts, attempts=[*answers, *facts.attempts]))
    assert result.breaker_open_answers == 1 and round(result.breaker_open_p99_ms or 0, 3) == 6.0


def test_a_backlog_never_stored_never_recovered() -> None:
    facts = _clean(_chain(), t=100.0)
    missing = facts.planned[1].provider_event_id
    rows = [r for r in facts.rows if r.provider_event_id != missing]
    result = audit(replace(facts, rows=rows, fault_windows=[(101.5, 102.5)]))
    assert result.recovery_seconds == math.inf and result.lost == (missing,)
    assert "never recovered" in result.findings(10)
    dead_lettered = replace(facts, rows=rows, fault_windows=[(101.5, 102.5)],
                            letters=[Letter("not_found", missing, "usr_r_0")])
    assert round(audit(dead_lettered).recovery_seconds or 0, 3) == round(103.01 - 102.5, 3)  # the next 2xx


def test_a_request_that_got_no_answer_is_a_finding() -> None:
    """A connect error or a 30 s timeout (status None): no fault stops ingest, so it should always answer."""
    c = _chain()
    facts = _clean(c)
    hung = [Attempt(e.provider_event_id, 90.0, 120.0, None) for e in c.events]
    result = audit(replace(facts, attempts=[*hung, *facts.attempts]))
    assert result.no_answer == 6 and result.status_codes["none"] == 6
    assert result.lost == () and result.unacknowledged == ()  # every event got its 2xx in the end
    assert result.findings(recovery_target_seconds=10) == ["no answer 6"]


def test_a_2xx_that_started_before_the_circuit_opened_does_not_close_it() -> None:
    e = _chain().events

    def open_(event: int, started: float, finished: float) -> Attempt:
        return Attempt(e[event].provider_event_id, started, finished, 503, retry_after=True,
                       problem_type=CIRCUIT_OPEN_TYPE)

    attempts = [open_(0, 9.99, 10.0),  # the provider is told: open
                Attempt(e[1].provider_event_id, 5.0, 10.5, 202),  # a slow 2xx begun long before
                open_(2, 11.0, 11.9),  # 900 ms: told open at 10.0, nothing started since answered 2xx
                open_(3, 12.0, 12.001),
                Attempt(e[4].provider_event_id, 12.5, 12.6, 202),  # started after the last open: closed
                open_(5, 13.0, 13.002)]  # left out
    result = audit(Facts(e, attempts, [], {}, sync_mode=True))
    assert result.breaker_open_answers == 2
    assert round(result.breaker_open_p99_ms or 0, 3) == 900.0
    assert "breaker-open p99 900.0 ms > 10 ms (load, no probe answer)" in result.findings(10)


def test_the_offered_load_is_counted_in_the_fault_windows_and_outside() -> None:
    planned = [event for c in chains("r", 40, 10, START) for event in c.events]
    firsts = [e for e in planned if e.step == 0]
    # 20 chains start in 0..10 s (fault 4..6 s: four of them), their second events 0.1 s later
    attempts = []
    for index, event in enumerate(firsts[:20]):
        at = 100.0 + index * 0.5
        attempts.append(Attempt(event.provider_event_id, at, at + 0.01, 202))
        second = planned[planned.index(event) + 1]
        if not 104.0 <= at < 106.0:  # inside the fault the chain waits on its first event
            attempts.append(Attempt(second.provider_event_id, at + 0.1, at + 0.11, 202))
        attempts.append(Attempt(event.provider_event_id, at + 0.2, at + 0.21, 202, resend=True))  # not counted
    attempts.append(Attempt(firsts[0].provider_event_id, 100.3, 100.31, 503))  # a retry: not a first attempt
    facts = Facts(planned, attempts, [], {}, fault_windows=[(104.0, 105.0), (104.5, 106.0), (120.0, 121.0)],
                  load_window=(100.0, 110.0))
    offered = audit(facts).offered
    assert offered == OfferedLoad(first_attempts_in_faults=4 / 2, first_attempts_outside=(16 + 16) / 8,
                                  chain_starts_in_faults=4 / 2, chain_starts_outside=16 / 8)
    assert audit(replace(facts, load_window=None)).offered is None


def _open(event: str, started: float, finished: float) -> Attempt:
    return Attempt(event, started, finished, 503, retry_after=True, problem_type=CIRCUIT_OPEN_TYPE)


def test_the_probe_times_its_own_fail_fast_answers_apart_from_the_load() -> None:
    e = _chain().events
    load = [_open(e[0].provider_event_id, 9.9, 10.0),  # the provider is told: open
            _open(e[1].provider_event_id, 10.5, 10.560)]  # 60 ms as the load timed it
    probe = [Attempt("probe_0", 9.0, 9.02, 404, problem_type="urn:payment-webhooks:problem:not-found"),
             _open("probe_1", 9.5, 10.4),  # began before anyone was told open: waited on failed calls
             *(_open(f"probe_{n}", 10.0 + n / 20, 10.0 + n / 20 + n / 10_000) for n in range(2, 102))]  # 0.2…10.1 ms
    result = audit(Facts(e, load, [], {}, sync_mode=True, probe=probe))
    assert result.breaker_open_answers == 1 and round(result.breaker_open_p99_ms or 0, 3) == 60.0
    assert result.probe_open_answers == 100
    assert round(result.probe_open_p50_ms or 0, 3) == 5.1 and round(result.probe_open_p99_ms or 0, 3) == 10.0
    assert result.probe_status_codes == {"404": 1, "503": 101}
    assert result.sent == 2 and result.status_codes == {"503": 2}  # the probe's requests are not the load's


def test_a_2xx_of_the_load_after_the_circuit_closed_leaves_later_probe_answers_out() -> None:
    e = _chain().events
    load = [_open(e[0].provider_event_id, 9.9, 10.0),
            Attempt(e[1].provider_event_id, 10.2, 10.25, 202)]  # began after the open answer: closed since
    probe = [_open("probe_0", 10.1, 10.102), _open("probe_1", 10.3, 10.5)]
    result = audit(Facts(e, load, [], {}, sync_mode=True, probe=probe))
    assert result.probe_open_answers == 1 and round(result.probe_open_p99_ms or 0, 3) == 2.0


def test_the_verdict_holds_the_probe_figure_to_the_target_and_the_load_figure_only_without_one() -> None:
    e = _chain().events
    load = [_open(e[0].provider_event_id, 9.9, 10.0), _open(e[1].provider_event_id, 10.5, 10.560)]  # 60 ms
    fast = [_open(f"probe_{n}", 10.0 + n / 20, 10.0 + n / 20 + 0.004) for n in range(1, 11)]  # 4 ms each
    facts = Facts(e, load, [], {}, sync_mode=True, probe=fast)

    def breaker(facts: Facts) -> list[str]:
        return [f for f in audit(facts).findings(10) if f.startswith("breaker-open")]

    assert breaker(facts) == []  # the load's 60 ms is shown, not judged
    slow = [*fast, _open("probe_11", 10.6, 10.612)]
    assert breaker(replace(facts, probe=slow)) == ["breaker-open p99 12.0 ms > 10 ms (probe)"]
    assert breaker(replace(facts, probe=[])) == ["breaker-open p99 60.0 ms > 10 ms (load, no probe answer)"]


def test_an_answer_that_says_the_api_was_called_is_not_a_fail_fast_answer() -> None:
    """A half-open trial that failed (here 1 s, the api's timeout) while the provider had been told
    open: ingest's ``api_called`` leaves it out; it still tells the circuit is open."""
    e = _chain().events
    load = [_open(e[0].provider_event_id, 9.9, 10.0)]
    trial = replace(_open("probe_0", 10.1, 11.1), api_called=True)
    probe = [trial, _open("probe_1", 11.2, 11.203)]
    result = audit(Facts(e, load, [], {}, sync_mode=True, probe=probe))
    assert result.probe_open_answers == 1 and round(result.probe_open_p99_ms or 0, 3) == 3.0
    alone = audit(Facts(e, [], [], {}, sync_mode=True, probe=probe))  # the trial's answer told open
    assert alone.probe_open_answers == 1


def test_read_problem_takes_the_type_and_api_called_and_nothing_from_what_is_not_a_problem() -> None:
    body = b'{"type": "urn:payment-webhooks:problem:circuit-open", "api_called": true}'
    assert read_problem(503, "application/problem+json", body) == (CIRCUIT_OPEN_TYPE, True)
    assert read_problem(503, "application/problem+json", body.replace(b"true", b"false")) == (CIRCUIT_OPEN_TYPE,
                                                                                               False)
    assert read_problem(503, "application/problem+json", b'{"type": 7, "api_called": "yes"}') == (None, False)
    assert read_problem(503, "application/problem+json", b"[1]") == (None, False)
    assert read_problem(503, "application/json", b"\xff not json") == (None, False)
    assert read_problem(503, "text/plain", body) == (None, False)
    assert read_problem(202, "application/json", body) == (None, False)
