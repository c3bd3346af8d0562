"""A CI-sized subset of ``webhooks chaos``: the real processes, faults injected, every webhook audited.

Each test has its own embedded PostgreSQL and broker (the database outage stops the server,
which the session's must never be). The load is short and slow; the audit is the same.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import trio

from webhooks.chaos.dependencies import open_dependencies
from webhooks.chaos.faults import KAFKA, Scenario, db_outage, worker_kill
from webhooks.chaos.load import LoadShape
from webhooks.chaos.runner import RunResult, run_one

SHAPE = LoadShape(rate_per_second=60, clients=16)


async def _run(scenario: Scenario, tmp_path: Path) -> RunResult:
    with trio.fail_after(120):
        async with open_dependencies() as deps:
            return await run_one(deps, scenario, scenario.modes[0], SHAPE, tmp_path)


def _assert_nothing_lost_duplicated_or_reordered(result: RunResult) -> None:
    a = result.audit
    assert a.sent > 300 and a.answered_2xx == a.sent, a.unacknowledged[:5]
    assert a.lost == () and a.duplicated == () and a.order_violations == ()
    assert a.stored_once == a.answered_2xx
    assert a.other_5xx == {} and a.dlq_caused == {} and a.no_answer == 0
    assert result.skipped_starts == 0


async def test_workers_killed_mid_stream_lose_and_reorder_nothing(tmp_path: Path) -> None:
    scenario = Scenario("worker-kill", KAFKA, partial(worker_kill, kills=3), load_seconds=15)
    result = await _run(scenario, tmp_path)
    _assert_nothing_lost_duplicated_or_reordered(result)
    assert len(result.windows) == 3  # three kill -9s, each worker back afterwards
    assert not [f for f in result.findings if "exited" in f]


async def test_a_database_outage_in_http_mode_loses_nothing_and_answers_only_503s(tmp_path: Path) -> None:
    scenario = Scenario("db-outage", ("http",), partial(db_outage, at=4, seconds=8), load_seconds=16)
    result = await _run(scenario, tmp_path)
    _assert_nothing_lost_duplicated_or_reordered(result)
    assert result.audit.documented_503 > 0  # the outage was real: the provider was told to come back
    offered = result.audit.offered  # and the load held through it: chains kept starting
    assert offered and offered.chain_starts_in_faults and offered.chain_starts_outside
    assert offered.chain_starts_in_faults > 0.8 * offered.chain_starts_outside, offered
    assert len(result.windows) == 1
    probed = result.audit  # the probe timed the open circuit, was told "not found" while closed, and stored nothing
    assert probed.probe_open_answers > 0 and probed.probe_status_codes.get("404"), probed.probe_status_codes
    assert probed.unexpected_rows == 0
