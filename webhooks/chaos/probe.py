"""``python -m webhooks.chaos.probe``: ingest's fail-fast answers timed by a caller that is not itself overloaded.

The chaos provider times its answers inside one trio process that runs up to ~1,000 retrying
chains through 96 clients, on the two cores it shares with ingest, the api and PostgreSQL: an
answer that has arrived is timed only once that busy event loop gets back to its task, so the
provider's breaker-open p99 holds its own scheduling as well as ingest's. This probe is a separate
process doing one thing: every ``--interval-ms`` it sends one signed webhook over one keep-alive
connection and waits for the answer (never two in flight, nothing else to run), so what it times
is ingest and the kernel, not a queue of its own.

The webhook is about an order that does not exist, so it never changes anything: while the
circuit is closed ingest forwards it and the api answers 404 (no row written), which the
forwarder counts as an answer of the api — a success for the breaker, not a failure
(``ingest.update_forwarder.BREAKER_ANSWERS``); while the api is failing, its forwards fail like
the load's (20 a second beside hundreds); while the circuit is open ingest refuses it with
the circuit-open 503 like any other webhook, after the same checks (media type, signature,
schema). Sync modes only: in kafka mode it would be accepted and dead-lettered as not found.

Each attempt is one JSON line in ``--out``. Its times are wall clock, like the load's attempts
(the audit compares the two), but taken as one ``time.time()`` reading at start plus
``perf_counter`` since: the latency is perf_counter's, and a wall-clock step cannot bend it.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.client
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from ingest.signatures import signed_headers
from webhooks.chaos.audit import Attempt, read_problem
from webhooks.chaos.plan import AMOUNT, CURRENCY

SECRET_VARIABLE = "CHAOS_PROBE_SECRET"  # base64: a secret is never put on a command line
PATH = "/webhooks/payments/orders"
TIMEOUT_SECONDS = 30.0  # as the load's


@dataclass(frozen=True)
class Clock:
    """Wall-clock seconds read as ``perf_counter`` since one pinned reading."""

    wall: float
    perf: float

    @classmethod
    def pinned(cls) -> Clock:
        return cls(time.time(), time.perf_counter())

    def now(self) -> float:
        return self.wall + (time.perf_counter() - self.perf)


@dataclass(frozen=True)
class Request:
    data: bytes  # the whole HTTP/1.1 request: one write, so ingest reads it in one go
    event_id: str


def request(secret: bytes, host: str, run: str, index: int) -> Request:
    """A valid, signed order webhook about an order that no shard holds (nor can: the ids are the probe's)."""
    event_id = f"probe_{run}_{index}"
    body = json.dumps({"provider_event_id": event_id, "order_id": f"probe_no_such_order_{run}",
                       "user_id": f"probe_user_{run}", "status": "paid", "amount": AMOUNT, "currency": CURRENCY,
                       "occurred_at": dt.datetime.now(dt.UTC).isoformat()}).encode()
    headers = {"host": host, "content-length": str(len(body)), **signed_headers(secret, f"msg_{event_id}", body)}
    head = f"POST {PATH} HTTP/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return Request((head + "\r\n").encode() + body, event_id)


class Connection:
    """One keep-alive connection, opened again after a failure or a ``Connection: close``."""

    def __init__(self, host: str, port: int) -> None:
        self._address = (host, port)
        self._sock: socket.socket | None = None

    def exchange(self, data: bytes) -> tuple[http.client.HTTPResponse, bytes]:
        """The answer, and its body read to the end (the connection is kept for the next request)."""
        sock = self._sock or self._open()
        sock.sendall(data)
        response = http.client.HTTPResponse(sock, method="POST")
        response.begin()
        body = response.read()
        if response.will_close:
            self.close()
        return response, body

    def _open(self) -> socket.socket:
        self._sock = socket.create_connection(self._address, timeout=TIMEOUT_SECONDS)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def attempt(conn: Connection, clock: Clock, req: Request) -> Attempt:
    """One POST and its whole answer."""
    started = clock.now()
    try:
        response, body = conn.exchange(req.data)
    except (OSError, http.client.HTTPException):
        conn.close()  # the next request opens a new connection
        return Attempt(req.event_id, started, clock.now(), None)
    finished = clock.now()
    kind, api_called = read_problem(response.status, response.getheader("content-type", ""), body)
    return Attempt(req.event_id, started, finished, response.status,
                   retry_after=response.getheader("retry-after") is not None, problem_type=kind,
                   api_called=api_called)


def run(url: str, secret: bytes, run_tag: str, seconds: float, interval: float, out: IO[str]) -> None:
    """One attempt every ``interval`` (a tick missed while an answer was awaited is skipped) for ``seconds``."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    conn, clock = Connection(host, port), Clock.pinned()
    next_at = time.perf_counter()
    end, index = next_at + seconds, 0
    while next_at < end:
        time.sleep(max(0.0, next_at - time.perf_counter()))
        req = request(secret, parts.netloc, run_tag, index)
        out.write(json.dumps(asdict(attempt(conn, clock, req))) + "\n")
        index += 1
        next_at = max(next_at + interval, time.perf_counter())
    conn.close()


def read_attempts(path: Path) -> list[Attempt]:
    """The probe's attempts (none if it never wrote its file); a line cut short by a kill is left out."""
    if not path.exists():
        return []
    attempts = []
    for line in path.read_text().splitlines():
        try:
            attempts.append(Attempt(**json.loads(line)))
        except (ValueError, TypeError):
            continue
    return attempts


def argv(url: str, out: Path, run_tag: str, seconds: float, interval_ms: float = 50.0) -> list[str]:
    return [sys.executable, "-m", "webhooks.chaos.probe", "--url", url, "--out", str(out), "--run", run_tag,
            "--seconds", f"{seconds:g}", "--interval-ms", f"{interval_ms:g}"]


def main(args: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m webhooks.chaos.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="ingest's base URL")
    parser.add_argument("--out", required=True, type=Path, help="JSON lines, one per attempt")
    parser.add_argument("--run", required=True, help="a tag unique to the run: the probe's event and order ids")
    parser.add_argument("--seconds", required=True, type=float)
    parser.add_argument("--interval-ms", type=float, default=50.0)
    options = parser.parse_args(args)
    secret = base64.b64decode(os.environ[SECRET_VARIABLE])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stopped early: the lines so far are still written
    with options.out.open("w") as out:
        run(options.url, secret, options.run, options.seconds, options.interval_ms / 1000, out)


if __name__ == "__main__":
    main()
