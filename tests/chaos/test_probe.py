"""The fail-fast probe sends what ingest accepts as authentic, over one connection, and reads back what it times."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ingest.providers.standard_webhooks import StandardWebhooks
from shared.messages import OrderWebhook
from webhooks.chaos import probe
from webhooks.chaos.audit import CIRCUIT_OPEN_TYPE

SECRET = b"probe-secret-0123456789abcdef"


def test_the_probe_request_is_signed_and_valid_and_names_an_order_nobody_holds() -> None:
    req = probe.request(SECRET, "127.0.0.1:8000", "run1", 7)
    head, body = req.data.split(b"\r\n\r\n", 1)
    request_line, *lines = head.decode().split("\r\n")
    headers = {name.lower().encode(): value.encode() for name, value in (line.split(": ", 1) for line in lines)}
    assert request_line == "POST /webhooks/payments/orders HTTP/1.1"
    assert int(headers[b"content-length"]) == len(body)
    provider = StandardWebhooks([SECRET], OrderWebhook)
    provider.verify(headers, body, time.time())  # raises Unauthorized if not
    webhook = provider.map(body)
    assert isinstance(webhook, OrderWebhook)
    assert (webhook.order_id, webhook.provider_event_id) == ("probe_no_such_order_run1", req.event_id)


class _CircuitOpen(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    connections: set[tuple[str, int]] = set()

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        self.rfile.read(int(self.headers["content-length"]))
        self.connections.add(self.client_address)
        body = json.dumps({"type": CIRCUIT_OPEN_TYPE}).encode()
        self.send_response(503)
        for name, value in (("content-type", "application/problem+json"), ("retry-after", "3"),
                            ("content-length", str(len(body)))):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _serving() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CircuitOpen)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_attempts_share_one_connection_and_read_back_as_the_audit_needs_them(tmp_path: Path) -> None:
    out = tmp_path / "probe.jsonl"
    with _serving() as port, out.open("w") as file:
        probe.run(f"http://127.0.0.1:{port}", SECRET, "run1", seconds=0.2, interval=0.05, out=file)
    assert len(_CircuitOpen.connections) == 1
    with out.open("a") as file:
        file.write('{"provider_event_id": "probe_run1_9", "started')  # a line cut short by a kill
    attempts = probe.read_attempts(out)
    assert 3 <= len(attempts) <= 5
    for attempt in attempts:
        assert (attempt.status, attempt.retry_after, attempt.problem_type) == (503, True, CIRCUIT_OPEN_TYPE)
        assert 0 < attempt.latency_ms < 1000
    starts = [a.started_at for a in attempts]
    assert starts == sorted(starts) and all(b - a >= 0.045 for a, b in zip(starts, starts[1:], strict=False))
    assert probe.read_attempts(tmp_path / "missing.jsonl") == []


@pytest.mark.parametrize(("argv", "finding"), [
    (["sh", "-c", "exit 0"], None),
    (["sh", "-c", "exit 3"], "the probe failed (exit 3; see probe.log)"),
    (["sleep", "60"], "the probe was still running"),
])
async def test_a_probe_that_failed_or_hung_is_a_finding_with_what_it_measured(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], finding: str | None) -> None:
    from webhooks.chaos import runner
    from webhooks.child_process import open_child

    monkeypatch.setattr(runner, "PROBE_EXIT_SECONDS", 0.5)
    (tmp_path / "probe.jsonl").write_text(json.dumps(
        {"provider_event_id": "probe_t_0", "started_at": 1.0, "finished_at": 1.002, "status": 503}) + "\n")
    async with open_child(argv, grace_seconds=1.0) as process:
        attempts, findings = await runner._probe_attempts(process, tmp_path)
    assert [a.provider_event_id for a in attempts] == ["probe_t_0"]  # what it wrote before is kept either way
    assert findings == ([] if finding is None else [f for f in findings if f.startswith(finding)])
    assert bool(findings) == (finding is not None)
