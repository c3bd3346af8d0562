"""Reading k6's ``--out csv`` while it runs: the requests of the last interval, not of the whole run.

k6's end-of-test summary has one p99 for the whole run; a soak needs one per 10 s. k6
appends one row per metric sample to the CSV (every second by default), so each read
takes the complete lines appended since the previous one: the request durations
(``http_req_duration``) and the ``ok``/``failed`` counters of ``signed_stream.js``.
A line k6 is still writing is left for the next read.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Interval:
    durations_ms: tuple[float, ...]
    accepted: int
    failed: int


def parse_rows(lines: Iterable[str], header: list[str]) -> Interval:
    """The durations and counters among k6 CSV ``lines`` (without the header); other metrics are ignored.
    Parsed as CSV: an error column may hold commas."""
    name_at, value_at = header.index("metric_name"), header.index("metric_value")
    durations: list[float] = []
    counts = {"ok": 0, "failed": 0}
    for row in csv.reader(lines):
        if len(row) <= value_at:
            continue
        name = row[name_at]
        if name == "http_req_duration":
            durations.append(float(row[value_at]))
        elif name in counts:
            counts[name] += int(float(row[value_at]))
    return Interval(tuple(durations), counts["ok"], counts["failed"])


class CsvTail:
    """The complete lines a growing CSV file gained since the last ``read``."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._header: list[str] | None = None

    def read(self) -> Interval:
        if not self._path.exists():
            return Interval((), 0, 0)
        with self._path.open("rb") as file:
            file.seek(self._offset)
            chunk = file.read()
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        lines = complete.decode(errors="replace").splitlines()
        if self._header is None and lines:
            self._header = next(csv.reader(lines[:1]))
            lines = lines[1:]
        return parse_rows(lines, self._header) if self._header else Interval((), 0, 0)
