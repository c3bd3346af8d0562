"""How every process starts and stops: settings once, JSON logs, signals, a grace deadline.

A service is ``async def serve(settings, loop, shutdown, *, task_status)``: it runs
until ``shutdown`` is set, then finishes in-flight work and returns. On SIGTERM or
SIGINT the runner sets ``shutdown`` and gives the service ``SHUTDOWN_GRACE`` to
return before cancelling it (hypercorn's own shutdown shape). Exit status: 0 after
a clean stop, 2 for bad configuration, 1 when the service crashed.

A port another process listens on is bad configuration too: a second copy of a process
on one host exits 2 with one line naming the variable. It is named here, where the
process is known (each serves HTTP on the port of its ``PORT_VARIABLE``); the server
that binds it cannot know. Port 0 is a free port: the "ready to serve" log line
carries the URLs actually served on.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from collections.abc import Awaitable, Iterator, Mapping
from typing import NoReturn, Protocol

import trio
import trio_asyncio

from shared.asyncio_loop import open_asyncio_loop
from shared.listening import PortInUse
from shared.logs import configure_logging, get_logger
from shared.settings import ConfigError, Settings

log = get_logger(__name__)
YOUNG_GENERATION_THRESHOLD = 10_000  # CPython's default is 700
PORT_VARIABLE = {"api": "API_PORT", "ingest": "INGEST_PORT", "workers": "WORKERS_PORT"}  # each one's HTTP port
READY = "ready to serve"  # the log event that carries the URLs a process serves on


class Serve(Protocol):
    def __call__(
        self,
        settings: Settings,
        loop: trio_asyncio.TrioEventLoop,
        shutdown: trio.Event,
        *,
        task_status: trio.TaskStatus[list[str]] = ...,  # the URLs it serves on
    ) -> Awaitable[None]: ...


def load_settings(required: tuple[str, ...] = (), environ: Mapping[str, str] | None = None) -> Settings:
    """Parse the environment (``os.environ`` unless given) or exit 2 with one line naming the bad variable."""
    try:
        return Settings.from_environ(os.environ if environ is None else environ).require(*required)
    except ConfigError as exc:
        exit_misconfigured(str(exc))


def exit_misconfigured(reason: str) -> NoReturn:
    print(f"configuration error: {reason}", file=sys.stderr)
    raise SystemExit(2) from None


def run_service(name: str, serve: Serve, required: tuple[str, ...] = ()) -> NoReturn:
    """The body of ``python -m <service>``."""
    settings = load_settings(required)
    configure_logging(settings.log_level, service=name)
    try:
        trio.run(run_until_signalled, serve, settings)
    except BaseException as exc:  # noqa: BLE001 - last line of defence: log and exit non-zero
        if isinstance(exc, SystemExit):
            raise
        if (reason := configuration_error(exc, PORT_VARIABLE[name])) is not None:
            exit_misconfigured(reason)
        log.exception("service crashed", error=repr(exc))
        raise SystemExit(1) from None
    log.info("stopped")
    raise SystemExit(0)


def configuration_error(exc: BaseException, port_variable: str) -> str | None:
    """The one-line reason when bad configuration alone ended the run (nurseries wrap it in groups)."""
    leaves = list(exception_leaves(exc))
    if not all(isinstance(leaf, ConfigError | PortInUse) for leaf in leaves):
        return None
    first = leaves[0]
    return first.described(port_variable) if isinstance(first, PortInUse) else str(first)


def exception_leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions themselves, out of however many (trio nursery) groups hold them."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from exception_leaves(inner)
    else:
        yield exc


async def run_until_signalled(serve: Serve, settings: Settings) -> None:
    """Run ``serve`` until SIGTERM/SIGINT, then allow it the grace period to finish."""
    shutdown = trio.Event()
    async with open_asyncio_loop() as loop, trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signal, shutdown, nursery.cancel_scope, settings.shutdown_grace_seconds)
        urls = await nursery.start(serve, settings, loop, shutdown)
        tune_garbage_collector()
        log.info(READY, urls=urls)
        await shutdown.wait()
        # serve() returns by itself once drained; the deadline set on signal bounds it


def tune_garbage_collector() -> None:
    """Freeze the start-up heap and collect the youngest generation ten times less often.

    Measured in ingest at its peak (64 connections): with the defaults, a young collection ran
    every ~9 requests — the objects of the requests in flight alone pass 700 — and full
    collections walked the whole start-up heap (frameworks, clients, schemas), ~28 ms each:
    ~8 % of the CPU and the p99 spikes. Frozen and at 10,000, the collector took ~0.3 % and
    the peak rose ~13 %. Reference counting still frees everything acyclic at once."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])


async def _stop_on_signal(shutdown: trio.Event, scope: trio.CancelScope, grace_seconds: float) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("shutdown requested", signal=signal.Signals(signum).name, grace_seconds=grace_seconds)
            shutdown.set()
            scope.deadline = min(scope.deadline, trio.current_time() + grace_seconds)
            return

