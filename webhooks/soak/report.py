"""``soak/results.md`` and ``soak/results.png`` (http mode: ``soak/results-http.*``): the minutes, the checks,
and every 10 s sample."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

from webhooks.soak.load_rate import LoadRate
from webhooks.soak.samples import Check, Minute, Sample, minutes


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1),
            *("| " + " | ".join(row) + " |" for row in rows)]


# What each mode's system is, said in the report's intro.
_SYSTEMS = {
    "kafka": "the kafka-mode system (ingest, api, two workers, embedded PostgreSQL with 2 shards and the tansu broker)",
    "http": "the http-mode system (ingest calling the api synchronously over HTTP, its forwarder batching concurrent "
            "webhooks into one call; the api writing to embedded PostgreSQL with 2 shards; no broker, no workers)",
}


def results_name(mode: str) -> str:
    """The results' file stem: kafka mode keeps ``results`` (.md, .png); another mode gets its own, so neither
    overwrites the other."""
    return "results" if mode == "kafka" else f"results-{mode}"


def markdown(samples: Sequence[Sample], checks: Sequence[Check], rate: LoadRate, length_minutes: float,
             k6_summary: Mapping[str, object], stored: int, machine: str, mode: str = "kafka") -> str:
    """The report of a soak in ``mode``: kafka mode's tables carry the broker's acknowledgements beside the
    requests' p99; http mode has no broker, so no such column."""
    acks = mode == "kafka"
    names = list(samples[-1].rss_mb) if samples else []
    cpu_names = list(samples[-1].cpu_percent) if samples else []
    accepted, failed = sum(s.accepted for s in samples), sum(s.failed for s in samples)
    verdict = "every target met" if all(c.passed for c in checks) else "**some targets missed**"
    command = "webhooks soak" + ("" if mode == "kafka" else f" --mode {mode}") + f" --minutes {length_minutes:g}"
    sharing = "k6, the broker, PostgreSQL and the services" if acks else "k6, PostgreSQL and the services"
    not_judged = ("RSS of `postgres` is summed over its processes (shared buffers counted in each) and the broker "
                  "keeps every record in memory by design: both are shown, not judged." if acks else
                  "RSS of `postgres` is summed over its processes (shared buffers counted in each): shown, not judged.")
    writer = "the workers" if acks else "the api (synchronously, before ingest answers)"
    ack_header = ["broker acks p99 ms"] if acks else []
    per_minute_intro = ("RSS in MB at the minute's end; p99 of all the minute's requests; p99 of the broker's "
                        "acknowledgements to ingest in the minute (from ingest's `kafka_delivery_seconds` histogram, "
                        "interpolated within its buckets: a 202 waits for one); CPU as % of one core, the minute's "
                        "mean.\n" if acks else
                        "RSS in MB at the minute's end; p99 of all the minute's requests (each waits for the api's "
                        "write); CPU as % of one core, the minute's mean.\n")

    def ack(value: float | None) -> list[str]:
        return [_ms(value)] if acks else []

    lines = [f"# Soak: {mode} mode\n\nMeasured {dt.date.today()} on {machine}; {sharing} share "
             "the machine (and here with whatever else ran on it).\n",
             f"`{command}`: {_SYSTEMS.get(mode, f'the {mode}-mode system')} under {rate.per_second} signed "
             f"webhooks/s ({rate.source}), 80 % order payments and 20 % chargebacks of 1,000 users, each a new event. "
             f"Every 10 s: the RSS of every process and the p99 of the requests k6 reported in the interval. "
             f"{not_judged}\n",
             f"Accepted (202): {accepted:,}; failed: {failed:,}; events stored by {writer}: {stored:,} "
             f"(every accepted webhook is a new event: the two agree unless something was lost). "
             f"Offered {rate.per_second * length_minutes * 60:,.0f}; not sent because every VU was waiting on "
             f"an answer (k6 `dropped_iterations`): {k6_count(k6_summary, 'dropped_iterations'):,}. "
             f"Whole run p99 (k6): {_ms(_k6_p99(k6_summary))} ms. Result: {verdict}.\n",
             "## Targets\n", *_table(["check", "measured", "target", "met"],
                                     [[c.what, c.measured, c.target, "yes" if c.passed else "**no**"] for c in checks]),
             f"\n## Per minute\n\n{per_minute_intro}",
             *_attribution(minutes(samples)),
             *_table(["minute", *names, "p99 ms", *ack_header, *(f"{n} CPU %" for n in cpu_names),
                      "webhooks/s", "failed"],
                     [[str(m.number), *(f"{m.rss_mb.get(n, 0):.1f}" for n in names), _ms(m.p99_ms),
                       *ack(m.ack_p99_ms), *(f"{m.cpu_percent.get(n, 0):.0f}" for n in cpu_names),
                       f"{m.accepted / 60:.0f}", str(m.failed)] for m in minutes(samples)]),
             f"\n![RSS and p99 over the soak]({results_name(mode)}.png)\n",
             "<details><summary>Every 10 s sample</summary>\n",
             *_table(["s", *names, "p99 ms", *ack_header, *(f"{n} CPU %" for n in cpu_names),
                      "webhooks/s"],
                     [[f"{s.seconds:.0f}", *(f"{s.rss_mb.get(n, 0):.1f}" for n in names), _ms(s.p99_ms),
                       *ack(s.ack_p99_ms), *(f"{s.cpu_percent.get(n, 0):.0f}" for n in cpu_names),
                       f"{s.accepted / 10:.0f}"] for s in samples]),
             "\n</details>"]
    return "\n".join(lines) + "\n"


def _attribution(whole_minutes: Sequence[Minute]) -> list[str]:
    """One sentence on whose latency climbed: the requests' p99 against the broker's acks, first minute to last."""
    measured = [m for m in whole_minutes if m.p99_ms and m.ack_p99_ms]
    if len(measured) < 2:
        return []
    first, last = measured[0], measured[-1]
    broker = (f"; the broker's CPU {first.cpu_percent['broker']:.0f} → {last.cpu_percent['broker']:.0f} %"
              if "broker" in first.cpu_percent and "broker" in last.cpu_percent else "")
    return [f"From minute {first.number} to {last.number} the requests' p99 went {first.p99_ms:.0f} → "
            f"{last.p99_ms:.0f} ms and the broker's acknowledgements' p99 {first.ack_p99_ms:.0f} → "
            f"{last.ack_p99_ms:.0f} ms{broker}.\n"]


def k6_count(summary: Mapping[str, object], metric: str) -> int:
    try:
        return int(summary["metrics"][metric]["values"]["count"])  # type: ignore[index]
    except (KeyError, TypeError):
        return 0  # k6 leaves a counter that never counted out of its summary


def _k6_p99(summary: Mapping[str, object]) -> float | None:
    try:
        return float(summary["metrics"]["http_req_duration"]["values"]["p(99)"])  # type: ignore[index]
    except (KeyError, TypeError):
        return None


def publish(results: Path, text: str, samples: Sequence[Sample], title: str, mode: str = "kafka") -> None:
    """``results.md`` and ``results.png`` in kafka mode, ``results-<mode>.*`` in another (``results_name``)."""
    results.mkdir(exist_ok=True)
    (results / f"{results_name(mode)}.md").write_text(text)
    draw(samples, results / f"{results_name(mode)}.png", title, acks=mode == "kafka")


def draw(samples: Sequence[Sample], path: Path, title: str, acks: bool = True) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    judged = [name for name in (samples[-1].rss_mb if samples else {}) if name not in ("broker", "postgres")]
    seconds = [s.seconds / 60 for s in samples]
    figure, (memory, latency) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for name in judged:
        memory.plot(seconds, [s.rss_mb.get(name, 0) for s in samples], label=name)
    memory.set_ylabel("RSS (MB)")
    memory.set_ylim(bottom=0)
    memory.legend(loc="lower right")
    workers = any(name.startswith("worker") for name in judged)
    memory.set_title("RSS per process (limits: ingest and api 150 MB" + (", workers 250 MB)" if workers else ")"))
    latency.plot(seconds, [s.p99_ms if s.p99_ms is not None else float("nan") for s in samples], label="p99 per 10 s")
    if acks:
        latency.plot(seconds, [s.ack_p99_ms if s.ack_p99_ms is not None else float("nan") for s in samples],
                     label="broker acks p99 per 10 s", linestyle=":")
    per_minute = minutes(samples)
    if per_minute:  # minute m spans (m-1, m]: a step drawn back from each minute's end
        values = [m.p99_ms or float("nan") for m in per_minute]
        latency.step([0, *(m.number for m in per_minute)], [values[0], *values], where="pre", label="p99 per minute")
    latency.set_ylabel("p99 (ms)")
    latency.set_xlabel("minutes")
    latency.set_ylim(bottom=0)
    latency.legend(loc="upper right")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
