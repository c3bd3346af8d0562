"""``chaos/results.md`` and ``chaos/results.png``: one row and one panel per scenario×mode."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from webhooks.chaos.runner import CHAOS_ENV, RunResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes

HEADER = ("| scenario | mode | sent | 2xx | stored once | lost | duplicated | order violations | unacked "
          "| DLQ expected | DLQ caused by the fault | 5xx other than 503 | 503 + Retry-After | no answer "
          "| breaker-open p50 / p99 ms, load | breaker-open p50 / p99 ms, probe | recovery s | longest wait s "
          "| verdict |")
# Why the two figures differ, under the table (chaos/results.md).
BREAKER_FIGURES = (
    "Breaker-open answers are timed twice: by the load, inside the provider's one trio process that runs up to "
    "~1,000 retrying chains through 96 clients on the cores ingest uses too, so its figure also holds the time "
    "that busy event loop takes to get back to an answer that has arrived; and by the probe, a process of its "
    "own sending one signed webhook about an unknown order at a time (every 50 ms, one keep-alive connection), "
    "whose figure is what a caller not itself overloaded waits and is the one the verdict holds to 10 ms (the "
    "load's only where the probe saw no open circuit). Only fail-fast refusals are timed: a circuit-open 503 "
    "whose problem says `api_called` (the webhook's call failed before the circuit opened, or it was a failed "
    "half-open trial) waited on the api, not on the breaker.")


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in sorted(counts.items())) or "0"


def _number(value: float | None, digits: int = 1) -> str:
    if value == math.inf:
        return "never"
    return "–" if value is None else f"{value:.{digits}f}"


def _latencies(p50: float | None, p99: float | None) -> str:
    return "–" if p50 is None or p99 is None else f"{p50:.1f} / {p99:.1f}"


def row(result: RunResult) -> str:
    a = result.audit
    verdict = "pass" if not result.findings else "**FAIL**: " + "; ".join(result.findings)
    cells = [result.scenario, result.mode, f"{a.sent:,}", f"{a.answered_2xx:,}", f"{a.stored_once:,}",
             str(len(a.lost)), str(len(a.duplicated)), str(len(a.order_violations)), str(len(a.unacknowledged)),
             _counts(a.dlq_expected), _counts(a.dlq_caused), _counts(a.other_5xx), f"{a.documented_503:,}",
             f"{a.no_answer:,}", _latencies(a.breaker_open_p50_ms, a.breaker_open_p99_ms),
             _latencies(a.probe_open_p50_ms, a.probe_open_p99_ms), _number(a.recovery_seconds),
             _number(a.longest_wait_seconds), verdict]
    return "| " + " | ".join(cells) + " |"


def table(results: Sequence[RunResult]) -> str:
    separator = "|" + "---|" * 2 + "---:|" * 16 + "---|"
    return "\n".join([HEADER, separator, *(row(r) for r in results)])


LOAD_HEADER = ("| scenario | mode | chains started | chains at once, most | starts dropped at the cap "
               "| chain starts/s in faults / outside | first attempts/s in faults / outside |")


def _pair(inside: float | None, outside: float | None) -> str:
    return f"{_number(inside)} / {_number(outside)}"


def load_table(results: Sequence[RunResult]) -> str:
    """The offered load of each run: open-loop chain starts, and the first attempts they and their chains made."""
    lines = [LOAD_HEADER, "|---|---|" + "---:|" * 5]
    for r in results:
        o = r.audit.offered
        starts = "–" if o is None else _pair(o.chain_starts_in_faults, o.chain_starts_outside)
        firsts = "–" if o is None else _pair(o.first_attempts_in_faults, o.first_attempts_outside)
        lines.append(f"| {r.scenario} | {r.mode} | {r.chains_started:,} | {r.most_in_flight:,} | "
                     f"{r.skipped_starts:,} | {starts} | {firsts} |")
    return "\n".join(lines)


def details(results: Sequence[RunResult]) -> str:
    """The first few of each finding, so a failure can be followed up."""
    lines = []
    for r in results:
        a = r.audit
        for what, items in (("lost", a.lost), ("duplicated", a.duplicated), ("order violations", a.order_violations),
                            ("unacknowledged", a.unacknowledged)):
            if items:
                lines.append(f"- {r.scenario}/{r.mode} {what}: {', '.join(items[:5])}{' …' if len(items) > 5 else ''}")
        if a.status_codes:
            lines.append(f"- {r.scenario}/{r.mode} answers: {_counts(a.status_codes)}")
        if a.probe_status_codes:
            lines.append(f"- {r.scenario}/{r.mode} probe answers: {_counts(a.probe_status_codes)} "
                         f"({a.probe_open_answers:,} breaker-open)")
    return "\n".join(lines)


def settings_line() -> str:
    return ", ".join(f"`{name}={value}`" for name, value in CHAOS_ENV.items())


def draw(results: Sequence[RunResult], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 3
    rows = math.ceil(len(results) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(15, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(results):]:
        ax.set_visible(False)
    for ax, result in zip(axes.flat, results, strict=False):
        _panel(ax, result)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _panel(ax: Axes, result: RunResult) -> None:
    samples = result.samples
    t = [s.at - result.started for s in samples]
    rates = [0.0] + [max(0, b.ok_answers - a.ok_answers) / max(b.at - a.at, 1e-3)
                     for a, b in zip(samples, samples[1:], strict=False)]
    ax.plot(t, rates, color="#3b75af", label="2xx/s")
    for begun, ended in result.windows:
        start = begun - result.started
        ax.axvspan(start, max(ended - result.started, start + 0.3), color="#d62728", alpha=0.15)
    right = ax.twinx()
    if result.mode == "kafka":
        right.plot(t, [s.pending if s.pending is not None else float("nan") for s in samples], color="#ff7f0e",
                   label="acknowledged, not stored")
        right.plot(t, [s.lag if s.lag is not None else float("nan") for s in samples], color="#2ca02c",
                   linestyle=":", label="worker_consumer_lag")
        right.set_ylabel("events", fontsize=8)
    else:
        right.step(t, [s.breaker if s.breaker is not None else float("nan") for s in samples], color="#9467bd",
                   where="post", label="circuit breaker")
        right.set_ylim(-0.05, 1.05)
        right.set_yticks([0, 0.5, 1], ["closed", "half-open", "open"], fontsize=7)
    ax.set_title(f"{result.scenario} · {result.mode}", fontsize=9)
    ax.set_xlabel("s since load start", fontsize=8)
    ax.set_ylabel("2xx/s", fontsize=8)
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=6, loc="upper right")
