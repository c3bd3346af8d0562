"""``bench/results.png``: webhooks/s and latency per mode, beside the server's ceiling."""

from __future__ import annotations

from pathlib import Path

from webhooks.bench.ingest_modes import Row


def draw(rows: list[Row], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [row.target for row in rows]
    figure, (rate, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    rate.bar(names, [row.peak.ok_per_second for row in rows], color=["#999999"] + ["#3b75af"] * (len(rows) - 1))
    rate.set_title("webhooks/s (peak, median of rounds)")
    rate.tick_params(axis="x", rotation=20)
    positions = range(len(rows))
    latency.bar([p - 0.2 for p in positions], [row.peak.p50_ms for row in rows], width=0.4, label="p50 at peak")
    latency.bar([p + 0.2 for p in positions], [row.peak.p99_ms for row in rows], width=0.4, label="p99 at peak")
    latency.set_xticks(list(positions), names, rotation=20)
    latency.set_title("latency (ms)")
    latency.legend()
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
