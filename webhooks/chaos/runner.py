"""``webhooks chaos``: every scenario in every mode it applies to, audited, then the report.

One embedded PostgreSQL and one broker serve the whole run; each scenario×mode gets fresh
shard databases (its orders seeded), its own topic prefix, and the mode's processes. The
provider's load runs for the scenario's length while its fault runs beside it; then the
provider finishes its chains (retrying until 2xx), the run waits until every acknowledged
event is stored (or a deadline), and the facts are gathered and audited. In the sync modes the
fail-fast probe (``probe.py``) runs beside the load, as a process of its own, for the load's length.
"""

from __future__ import annotations

import base64
import datetime as dt
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from shared.settings import Mode
from shared.topics import ALL_TOPICS, admin_client, create_topics
from webhooks.chaos import plan, probe
from webhooks.chaos.audit import Attempt, Audit, Facts, Letter, audit
from webhooks.chaos.collect import read_dead_letters, read_shards
from webhooks.chaos.delay_proxy import DelayProxy
from webhooks.chaos.dependencies import Dependencies, open_dependencies
from webhooks.chaos.faults import SCENARIOS, Scenario, Stage
from webhooks.chaos.load import LoadShape, Provider
from webhooks.chaos.system import open_system
from webhooks.chaos.timeline import Sample, Timeline, stored_count
from webhooks.child_process import ChildProcess, open_child
from webhooks.embedded import free_port

SECRET = b"chaos-secret-0123456789abcdef"
PARTITIONS = 6
DRAIN_SECONDS = 45.0  # after the load: the provider finishes its chains, retrying until 2xx
STORE_DEADLINE_SECONDS = 45.0  # then: every acknowledged event stored
SESSION_TIMEOUT_SECONDS = 2.0
PROBE_EXIT_SECONDS = 10.0  # after the load: the probe's last answer and its exit
# Documented in chaos/results.md: what the runs are configured with, beside the defaults.
CHAOS_ENV = {
    "KAFKA_SESSION_TIMEOUT": f"{SESSION_TIMEOUT_SECONDS:g}s",  # quick joins on tansu (FIELD-NOTES), as `webhooks dev`
    "BREAKER_RESET_TIMEOUT": "5s",  # recovery ≤ 10 s needs the trial within that
    "API_TIMEOUT": "1s",  # the slow api's 2 s answers are timeouts
    "SHUTDOWN_GRACE": "4s",
}


@dataclass(frozen=True)
class RunResult:
    scenario: str
    mode: Mode
    audit: Audit
    findings: tuple[str, ...]
    samples: tuple[Sample, ...]
    windows: tuple[tuple[float, float], ...]
    started: float  # wall clock at the load's start
    seconds: float  # the whole run, stack start to audit
    attempts: tuple[Attempt, ...] = ()
    chains_started: int = 0
    most_in_flight: int = 0  # chains at once
    skipped_starts: int = 0  # chain starts dropped at ``LoadShape.max_chains``


def recovery_target(scenario: Scenario) -> float:
    return SESSION_TIMEOUT_SECONDS + 10 if scenario.name == "broker-outage" else 10.0


def _env(mode: Mode, urls: list[str], deps: Dependencies, prefix: str, scenario: Scenario) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "info", "WEBHOOK_MODE": mode,
            "DATABASE_URLS": ",".join(urls), "KAFKA_BOOTSTRAP_SERVERS": deps.broker.bootstrap_servers,
            "TOPIC_PREFIX": prefix, "TOPIC_PARTITIONS": str(PARTITIONS),
            "WEBHOOK_SECRETS": "whsec_" + base64.b64encode(SECRET).decode(),
            "INTERNAL_TOKEN": "chaos-internal-token", "API_TOKENS": "chaos-api-token", **CHAOS_ENV, **scenario.env}


async def _wait_stored(deps: Dependencies, urls: list[str], provider: Provider) -> None:
    with trio.move_on_after(STORE_DEADLINE_SECONDS):
        while True:  # polled: the database has nothing to wait on
            if (await stored_count(deps.loop, urls) or 0) >= len(provider.acknowledged):
                return
            await trio.sleep(0.5)


async def _wait_dead_letters(deps: Dependencies, prefix: str, keys: Collection[str]) -> list[Letter]:
    """Every dead letter, once the poison records' letters are among them (or a deadline passed)."""
    with trio.move_on_after(STORE_DEADLINE_SECONDS):
        while True:  # polled: the DLQ topics have nothing to wait on
            letters = await read_dead_letters(deps.broker.bootstrap_servers, prefix)
            if set(keys) <= {letter.key for letter in letters}:
                return letters
            await trio.sleep(0.5)
    return await read_dead_letters(deps.broker.bootstrap_servers, prefix)


@asynccontextmanager
async def _open_probe(ingest_url: str, log_dir: Path, tag: str, seconds: float) -> AsyncIterator[ChildProcess]:
    """The fail-fast probe (``probe.py``) as a process of its own, for ``seconds``; its lines go to ``probe.jsonl``."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1",
           probe.SECRET_VARIABLE: base64.b64encode(SECRET).decode()}
    with open(log_dir / "probe.log", "ab") as log:  # noqa: ASYNC230 - a local file opens at once
        async with open_child(probe.argv(ingest_url, log_dir / "probe.jsonl", tag, seconds), env=env,
                              stdout=log.fileno(), stderr=subprocess.STDOUT, grace_seconds=5.0) as process:
            yield process


async def _probe_attempts(process: ChildProcess | None, log_dir: Path) -> tuple[list[Attempt], list[str]]:
    """Once the probe has exited (or a deadline passed: then its lines so far), what it measured, and
    a finding if it failed — a probe that measured nothing must not pass quietly."""
    if process is None:
        return [], []
    with trio.move_on_after(PROBE_EXIT_SECONDS):
        await process.wait()
    attempts = probe.read_attempts(log_dir / "probe.jsonl")
    if process.returncode is None:
        return attempts, [f"the probe was still running {PROBE_EXIT_SECONDS:g} s after the load"]
    if process.returncode != 0:
        return attempts, [f"the probe failed (exit {process.returncode}; see probe.log)"]
    return attempts, []


async def run_one(deps: Dependencies, scenario: Scenario, mode: Mode, shape: LoadShape, log_root: Path,
                  load_seconds: float | None = None, seed: int = 0) -> RunResult:
    """One scenario in one mode, audited. ``load_seconds`` shortens it (the test suite's subset)."""
    begun = time.monotonic()
    load_seconds = load_seconds or scenario.load_seconds
    tag = f"{scenario.name.replace('-', '_')}_{mode}_{int(time.time()) % 100000}"
    count = int(shape.rate_per_second * load_seconds / 2) + 20  # more chains than the window starts (rate / 3.5)
    chains = plan.chains(tag, count, users=max(count // 3, 1), start=dt.datetime.now(dt.UTC), seed=seed)
    urls = await deps.fresh_shards(tag, chains)
    prefix = f"{tag}."
    if mode == "kafka":
        await trio.to_thread.run_sync(create_topics, admin_client(deps.broker.bootstrap_servers),
                                      [prefix + t for t in ALL_TOPICS], PARTITIONS)
    env = _env(mode, urls, deps, prefix, scenario)
    api_port, grpc_port = free_port(), free_port()
    env.update(API_GRPC_PORT=str(grpc_port), API_BASE_URL=f"http://127.0.0.1:{api_port}",
               API_GRPC_TARGET=f"127.0.0.1:{grpc_port}")
    async with AsyncExitStack() as stack:
        nursery = await stack.enter_async_context(trio.open_nursery())
        proxy = None
        if scenario.delayed_api:
            proxy = DelayProxy(grpc_port if mode == "grpc" else api_port)
            proxy_port = free_port()
            await nursery.start(proxy.serve, proxy_port)
            env.update(API_BASE_URL=f"http://127.0.0.1:{proxy_port}", API_GRPC_TARGET=f"127.0.0.1:{proxy_port}")
        log_dir = log_root / f"{scenario.name}-{mode}"
        system = await stack.enter_async_context(open_system(mode, env, api_port, log_dir, scenario.workers))
        prober = None if mode == "kafka" else await stack.enter_async_context(
            _open_probe(system.url("ingest"), log_dir, tag, load_seconds))
        provider = Provider(system.url("ingest"), SECRET, shape, seed=seed)
        timeline = Timeline(provider, system, deps.loop, urls)
        stage = Stage(system, deps, prefix, proxy, random.Random(seed), load_seconds)
        nursery.start_soon(timeline.run)
        started_wall, stage.started = time.time(), trio.current_time()
        async with trio.open_nursery() as run:
            run.start_soon(scenario.fault, stage)
            run.start_soon(provider.run, chains, load_seconds, DRAIN_SECONDS)
        probed, probe_findings = await _probe_attempts(prober, log_dir)
        letters = []
        if mode == "kafka":
            await _wait_stored(deps, urls, provider)
            letters = await _wait_dead_letters(deps, prefix, stage.poison.keys())
        rows, final = await read_shards(deps.loop, urls)
        nursery.cancel_scope.cancel()
    planned = [event for one in chains for event in one.events]
    facts = Facts(planned, provider.attempts, rows, final, letters, stage.poison, stage.windows, mode != "kafka",
                  load_window=(started_wall, started_wall + load_seconds), probe=probed)
    result = audit(facts)
    load_findings = []
    if provider.skipped_starts:
        load_findings.append(f"the load did not hold: {provider.skipped_starts} chain starts dropped at "
                             f"{shape.max_chains} chains in flight")
    if provider.chains_ran_out:
        load_findings.append(f"the load did not hold: all {len(chains)} planned chains started before the window ended")
    findings = tuple(result.findings(recovery_target(scenario)) + system.crashes + load_findings + probe_findings)
    return RunResult(scenario.name, mode, result, findings, tuple(timeline.samples), tuple(stage.windows),
                     started_wall, time.monotonic() - begun, tuple(provider.attempts),
                     provider.chains_started, provider.most_in_flight, provider.skipped_starts)


def selected(names: Sequence[str], modes: Sequence[Mode]) -> list[tuple[Scenario, Mode]]:
    return [(s, m) for s in SCENARIOS if not names or s.name in names for m in s.modes if not modes or m in modes]


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def progress(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


async def run_chaos(runs: list[tuple[Scenario, Mode]], shape: LoadShape, log_root: Path,
                    report: Callable[[str], None] = progress) -> list[RunResult]:
    results = []
    async with open_dependencies() as deps:
        for index, (scenario, mode) in enumerate(runs, start=1):
            report(f"chaos {index}/{len(runs)}: {scenario.name} in {mode} mode ({scenario.load_seconds:.0f} s of load)")
            result = await run_one(deps, scenario, mode, shape, log_root)
            a = result.audit
            report(f"  sent {a.sent}, 2xx {a.answered_2xx}, stored once {a.stored_once}, lost {len(a.lost)}, "
                   f"duplicated {len(a.duplicated)}, order violations {len(a.order_violations)}, "
                   f"no answer {a.no_answer}, chains at once ≤ {result.most_in_flight}, breaker-open p50/p99 ms "
                   f"load {_ms(a.breaker_open_p50_ms)}/{_ms(a.breaker_open_p99_ms)} "
                   f"probe {_ms(a.probe_open_p50_ms)}/{_ms(a.probe_open_p99_ms)} ({a.probe_open_answers}); "
                   f"{'; '.join(result.findings) or 'pass'} ({result.seconds:.0f} s)")
            results.append(result)
    return results
