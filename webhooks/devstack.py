"""``webhooks dev``: the whole system of one mode in the foreground.

Dependencies come from the environment when given (``DATABASE_URLS``,
``KAFKA_BOOTSTRAP_SERVERS``), else embedded ones are started. Then migrations,
topics, and every process of the mode's Procfile as children; Ctrl-C or SIGTERM
stops the children (concurrently, each with its grace period), then the embedded
dependencies. A child that dies on its own stops everything with exit status 1.

Each child's URL is the one its "ready to serve" log line names, read from its stdout
(which is relayed to ours): the configured port is not always the one served on — with
``WORKERS_PORT=0`` the OS picks it.

The banner prints what a newcomer needs to try the system: the embedded (passwordless)
DSNs and the dev secrets it generated. A DSN from the environment is shown with its
password masked, and a secret from the environment by its variable's name only.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Collection, Iterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio

from shared.asyncio_loop import open_asyncio_loop
from shared.migrations import migrate_dsn
from shared.secret import Dsn
from shared.service import READY
from shared.settings import Mode, Settings, parse_dsn_list
from shared.topics import ALL_TOPICS, admin_client, create_topics
from webhooks.child_process import ChildProcess, open_child
from webhooks.connection_file import client_variables, connection_path, remove_connection, write_connection
from webhooks.embedded import create_databases, dsn, open_embedded_broker, open_embedded_postgres
from webhooks.procfile import ProcessSpec, load_procfile

READY_DEADLINE_SECONDS = 60.0


@dataclass(frozen=True)
class Dependencies:
    database_urls: tuple[Dsn, ...]
    kafka_bootstrap_servers: str | None
    embedded: tuple[str, ...]  # which ones this run started


@asynccontextmanager
async def open_dependencies(environ: Mapping[str, str], mode: Mode, shards: int) -> AsyncIterator[Dependencies]:
    """Use the configured dependencies, or start embedded ones for what is missing."""
    async with AsyncExitStack() as stack:
        embedded = []
        if environ.get("DATABASE_URLS"):
            urls = parse_dsn_list(environ["DATABASE_URLS"])
        else:
            port = await stack.enter_async_context(open_embedded_postgres())
            names = [f"webhooks_shard{index}" for index in range(shards)]
            await create_databases(port, names)
            urls, embedded = tuple(Dsn(dsn(port, name)) for name in names), ["postgres"]
        bootstrap = environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
        if bootstrap is None and mode == "kafka":
            bootstrap = await stack.enter_async_context(open_embedded_broker())
            embedded.append("kafka")
        yield Dependencies(urls, bootstrap, tuple(embedded))


def _whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def dev_environment(environ: Mapping[str, str], deps: Dependencies, mode: Mode) -> dict[str, str]:
    """The children's environment: the caller's, the dependencies, and dev secrets where unset."""
    env = dict(environ)
    env.update(WEBHOOK_MODE=mode, DATABASE_URLS=",".join(url.reveal() for url in deps.database_urls),
               PYTHONUNBUFFERED="1")
    if deps.kafka_bootstrap_servers:
        env["KAFKA_BOOTSTRAP_SERVERS"] = deps.kafka_bootstrap_servers
    env.setdefault("WEBHOOK_SECRETS", _whsec())
    env.setdefault("STRIPE_WEBHOOK_SECRETS", "whsec_" + secrets.token_hex(16))  # Stripe's: literal text, any form
    env.setdefault("INTERNAL_TOKEN", "dev-internal-" + secrets.token_urlsafe(12))
    env.setdefault("API_TOKENS", "dev-api-" + secrets.token_urlsafe(12))
    env.setdefault("KAFKA_SESSION_TIMEOUT", "2s")  # quick group joins on a local broker
    return env


async def prepare(settings: Settings) -> None:
    """Migrate every shard; in kafka mode, create the topics."""
    today = dt.datetime.now(dt.UTC).date()
    async with open_asyncio_loop() as loop:
        for url in settings.database_urls:
            await loop.run_aio_coroutine(migrate_dsn(url.reveal(), today))
    if settings.webhook_mode == "kafka":
        admin = admin_client(settings.kafka_bootstrap_servers)
        names = [settings.topic(name) for name in ALL_TOPICS]
        await trio.to_thread.run_sync(create_topics, admin, names, settings.topic_partitions)


async def wait_ready(url: str, process: ChildProcess) -> None:
    """Poll ``url`` until it answers 200, with a deadline; fail fast if the process died."""
    async with httpx.AsyncClient(timeout=2.0) as client:
        with trio.fail_after(READY_DEADLINE_SECONDS):
            while process.returncode is None:
                try:
                    if (await client.get(url)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await trio.sleep(0.1)
    raise RuntimeError(f"{url}: process exited with status {process.returncode} before it was ready")


def served_url(line: str) -> str | None:
    """The URL in a service's "ready to serve" log line (``shared.service``), else None."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if isinstance(record, dict) and record.get("event") == READY:
        return record["urls"][0]
    return None


class ChildOutput:
    """A child's stdout, relayed line by line to ours; notes the URL its "ready to serve" line names."""

    def __init__(self) -> None:
        self.url: str | None = None
        self.served_or_ended = trio.Event()

    async def relay(self, stream: trio.abc.ReceiveStream) -> None:
        """Copy until the child closes its stdout — at its exit, which ``open_child`` bounds.

        Shielded: the children are stopped after ``webhooks dev`` is cancelled, and their last
        lines must still be read; unread they would be lost, and a closed pipe would fail the
        child's own shutdown."""
        with trio.CancelScope(shield=True):
            async with stream:
                pending = b""
                async for chunk in stream:
                    *lines, pending = (pending + chunk).split(b"\n")
                    for line in lines:
                        self._line(line.decode(errors="replace"))
                if pending:
                    self._line(pending.decode(errors="replace"))
        self.served_or_ended.set()

    def _line(self, line: str) -> None:
        print(line, flush=True)
        if self.url is None and (url := served_url(line)) is not None:
            self.url = url
            self.served_or_ended.set()


async def wait_served(name: str, output: ChildOutput, process: ChildProcess) -> str:
    """The URL the child logs once it serves, after its ``/readyz`` answers 200; with a deadline."""
    with trio.fail_after(READY_DEADLINE_SECONDS):
        await output.served_or_ended.wait()
    if output.url is None:
        raise RuntimeError(f"{name}: the process ended its output before it served")
    await wait_ready(output.url + "/readyz", process)
    return output.url


class DevSupervisor:
    """Runs the mode's processes; the first to exit on its own, or a signal, stops them all."""

    def __init__(self, env: dict[str, str], settings: Settings) -> None:
        self.env = env
        self.settings = settings
        self.stop = trio.Event()
        self.crashed: dict[str, int] = {}
        self.urls: dict[str, str] = {}  # each ready process's, as it logged it

    async def run_child(self, spec: ProcessSpec, *, task_status: trio.TaskStatus[None]) -> None:
        env = {**self.env, **spec.env}
        output = ChildOutput()
        async with trio.open_nursery() as relays:  # outlives the child: its output is read to the end
            async with open_child(spec.argv, env=env, grace_seconds=self.settings.shutdown_grace_seconds + 2,
                                  stdout=subprocess.PIPE) as process:
                relays.start_soon(output.relay, process.stdout)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._watch_exit, spec.name, process)
                    self.urls[spec.name] = await wait_served(spec.name, output, process)
                    task_status.started()
                    await self.stop.wait()
                    nursery.cancel_scope.cancel()

    async def _watch_exit(self, name: str, process: ChildProcess) -> None:
        code = await process.wait()
        if not self.stop.is_set():
            self.crashed[name] = code
            print(f"webhooks dev: {name} exited with status {code}; stopping everything", file=sys.stderr)
            self.stop.set()

    async def stop_on_signal(self) -> None:
        # SIGHUP: the terminal was closed — stop as cleanly (and remove the connection file)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            async for _ in signals:
                print("webhooks dev: stopping", file=sys.stderr, flush=True)
                self.stop.set()
                return


def banner(supervisor: DevSupervisor, deps: Dependencies, supplied: Collection[str] = (),
           connection: Path | None = None) -> str:
    """What runs where, and how to try it; a secret named in ``supplied`` (the caller's own) shows as ``$NAME``."""
    env, urls = supervisor.env, supervisor.urls
    secret_names = ("WEBHOOK_SECRETS", "STRIPE_WEBHOOK_SECRETS", "API_TOKENS")
    secret = {name: f"${name}" if name in supplied else env[name] for name in secret_names}
    yours = [name for name in secret_names if name in supplied]  # not in the connection file
    lines = [f"webhooks dev: ready (mode {env['WEBHOOK_MODE']})"]
    lines += [f"  {name:<8} {url}" for name, url in urls.items()]
    lines += [f"  shard{index}   {url.masked()}" for index, url in enumerate(deps.database_urls)]
    if deps.kafka_bootstrap_servers:
        lines.append(f"  kafka    {deps.kafka_bootstrap_servers}")
    lines += [
        f"  embedded: {', '.join(deps.embedded) or 'none'}",
        f"  WEBHOOK_SECRETS={secret['WEBHOOK_SECRETS']}",
        f"  STRIPE_WEBHOOK_SECRETS={secret['STRIPE_WEBHOOK_SECRETS']}",
        f"  API_TOKENS={secret['API_TOKENS']}",
        "  webhook endpoints: POST /webhooks/payments/orders, POST /webhooks/payments/disputes, POST /webhooks/stripe",
        f"Try it, from another shell (the commands read {connection or connection_path({})}):",
        "  .venv/bin/webhooks send-sample" + (f"   (with {' and '.join(yours)} set in that shell)" if yours else ""),
        "  .venv/bin/webhooks send-sample --provider stripe",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


@contextmanager
def dev_connection_file(environ: Mapping[str, str], env: Mapping[str, str], urls: Mapping[str, str]) -> Iterator[Path]:
    """The connection file (``webhooks.connection_file``) while the system serves: the ports the
    processes logged, the dependencies, and the secrets ``dev`` generated (not the caller's)."""
    path = connection_path(environ)
    served = {"INGEST_PORT": urls["ingest"].rsplit(":", 1)[1], "API_BASE_URL": urls["api"]}
    write_connection(path, client_variables({**env, **served}, supplied=environ))
    try:
        yield path
    finally:
        remove_connection(path)


async def run_dev(environ: Mapping[str, str], mode: Mode, shards: int) -> int:
    """The body of ``webhooks dev``; returns the exit status."""
    async with open_dependencies(environ, mode, shards) as deps:
        env = dev_environment(environ, deps, mode)
        settings = Settings.from_environ(env)
        await prepare(settings)
        supervisor = DevSupervisor(env, settings)
        specs = load_procfile(mode)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(supervisor.stop_on_signal)
            for spec in specs:
                await nursery.start(supervisor.run_child, spec)
            with dev_connection_file(environ, env, supervisor.urls) as connection:
                print(banner(supervisor, deps, supplied=environ.keys(), connection=connection), flush=True)
                await supervisor.stop.wait()
            nursery.cancel_scope.cancel()
    print(f"webhooks dev: stopped{f' (crashed: {supervisor.crashed})' if supervisor.crashed else ''}", flush=True)
    return 1 if supervisor.crashed else 0


def run_dev_sync(mode: Mode, shards: int) -> int:
    return trio.run(run_dev, dict(os.environ), mode, shards)


async def run_deps(shards: int) -> int:
    """The body of ``webhooks deps``: one JSON line with the addresses, then wait for a signal."""
    async with open_dependencies({}, "kafka", shards) as deps:
        addresses = {"database_urls": [url.reveal() for url in deps.database_urls],  # embedded: no password
                     "kafka_bootstrap_servers": deps.kafka_bootstrap_servers}
        print(json.dumps(addresses), flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
    return 0
