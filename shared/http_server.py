"""Serving an ASGI app on hypercorn's trio worker, with the process's shutdown event.

On shutdown hypercorn stops accepting and then waits until every connection is
idle — but a client that merely keeps its connection open (keep-alive) can hold
that up for the whole graceful timeout (seen with quart-trio: the app call does not
end with its response). So ``RequestTracker`` counts requests whose response is
not complete yet, and once shutdown is asked for and that count is zero (or the
grace period is over), the server is cancelled: only real in-flight work is waited for.

The listening socket is bound by ``shared.listening`` (a taken port: ``PortInUse``) and
handed to hypercorn by descriptor; with port 0, the URLs it starts with carry the actual port.

hypercorn's trio worker runs each connection in the server's own nursery and lets any error but
``OSError`` escape it, so one malformed connection ended the whole server — an ``Upgrade: h2c``
whose ``HTTP2-Settings`` is not base64 (``binascii.Error``), a websocket upgrade followed by a
stray byte (hypercorn#225), now and then a garbled request racing its own error answer
(``BusyResourceError``). ``ContainedConnection`` ends only that connection, with a log line.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import hypercorn.trio.run as hypercorn_run
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.typing import Framework

from shared.http_metrics import RequestMetrics
from shared.listening import listen_tcp
from shared.logs import get_logger

log = get_logger(__name__)

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class RequestTracker:
    """ASGI middleware: how many HTTP requests have not finished their response; and their metrics."""

    def __init__(self, app: Framework) -> None:
        self.app = app
        self.in_flight = 0
        self._metrics = RequestMetrics()
        self._idle = trio.Event()
        self._idle.set()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # type: ignore[arg-type, call-arg, misc]  # an ASGI app, not WSGI
            return
        self._started()
        finished = False
        status = 500
        started = time.perf_counter()

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal finished, status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False) and not finished:
                finished = True
                self._finished()

        try:
            await self.app(scope, receive, tracked_send)  # type: ignore[arg-type, call-arg, misc]  # ASGI, not WSGI
        finally:
            if not finished:
                self._finished()
            self._metrics.observe(scope.get("path", ""), status, time.perf_counter() - started)

    def _started(self) -> None:
        self.in_flight += 1
        if self._idle.is_set():
            self._idle = trio.Event()

    def _finished(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        while self.in_flight:
            await self._idle.wait()


class ContainedConnection(TCPServer):
    """hypercorn's connection handler, whose errors end its connection only (``Cancelled`` still propagates)."""

    async def run(self) -> None:
        try:
            await super().run()  # closes the stream however it ends
        except Exception as exc:  # noqa: BLE001 - a client's malformed bytes must not end the server
            log.warning("connection dropped: hypercorn could not handle it", error=repr(exc)[:300])


# worker_serve builds each connection's handler from this module global: hypercorn has no other hook.
if hypercorn_run.TCPServer is not TCPServer:  # type: ignore[attr-defined]  # imported there, not re-exported
    raise ImportError("hypercorn.trio.run no longer serves connections with TCPServer; see ContainedConnection")
hypercorn_run.TCPServer = ContainedConnection  # type: ignore[attr-defined]  # the one hook, see above


def hypercorn_config(bind: str, *, grace_seconds: float) -> Config:
    config = Config()
    config.bind = [bind]
    config.graceful_timeout = grace_seconds
    config.accesslog = None  # requests are counted in /metrics, not logged one line each
    config.errorlog = None
    config.keep_alive_timeout = 75  # above common load-balancer idle timeouts
    return config


async def serve_http(
    app: Framework,
    host: str,
    port: int,
    shutdown: trio.Event,
    *,
    grace_seconds: float,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``shutdown`` is set and in-flight requests are answered; ``task_status`` gets the URLs.

    Raises ``PortInUse`` (before starting) when another process listens on ``port``."""
    tracker = RequestTracker(app)
    listener = listen_tcp(host, port)
    config = hypercorn_config(f"fd://{listener.detach()}", grace_seconds=grace_seconds)  # hypercorn owns it now
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_when_drained, shutdown, tracker, nursery.cancel_scope, grace_seconds)
        await serve(tracker, config, shutdown_trigger=shutdown.wait, task_status=task_status)  # type: ignore[arg-type]
        nursery.cancel_scope.cancel()


async def _stop_when_drained(shutdown: trio.Event, tracker: RequestTracker, scope: trio.CancelScope,
                             grace_seconds: float) -> None:
    await shutdown.wait()
    with trio.move_on_after(grace_seconds):
        await tracker.wait_idle()
    scope.cancel()
