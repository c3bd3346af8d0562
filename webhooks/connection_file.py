"""The connection settings ``webhooks dev`` leaves for the other commands.

A newcomer runs ``webhooks dev`` in one shell and ``webhooks send-sample`` (or ``dlq``,
``topics``, ``migrate``) in another; copying environment lines between them was the
step people got wrong. So ``dev`` writes what a client needs — the dependencies'
addresses, the ports its processes actually serve on, the secrets it generated — to a
file readable by its owner only, and removes it when it stops. The commands read it
under their own environment: a variable set in the shell always wins.

The file names the ``webhooks dev`` process that wrote it. A file left by a ``dev``
that died (kill -9) is ignored with a warning rather than used: its addresses would
lead to confusing connection errors. A secret the caller supplied to ``dev`` is never
copied into the file — the caller already has it in the shell.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from webhooks.procfile import PROJECT_ROOT

FILE_VARIABLE = "WEBHOOKS_CONNECTION_FILE"
DEFAULT_PATH = PROJECT_ROOT / ".webhooks" / "dev.json"
# What a client command needs; the dev-generated secrets among them.
CLIENT_VARIABLES = ("WEBHOOK_MODE", "DATABASE_URLS", "KAFKA_BOOTSTRAP_SERVERS", "TOPIC_PREFIX", "TOPIC_PARTITIONS",
                    "WEBHOOK_SECRETS", "STRIPE_WEBHOOK_SECRETS", "API_TOKENS", "INGEST_PORT", "API_BASE_URL",
                    "API_GRPC_TARGET")
SECRET_VARIABLES = frozenset({"DATABASE_URLS", "WEBHOOK_SECRETS", "STRIPE_WEBHOOK_SECRETS", "API_TOKENS"})


@dataclass(frozen=True)
class DevConnection:
    """What one running ``webhooks dev`` wrote: its pid and the variables for clients."""

    pid: int
    variables: dict[str, str]
    started: float | None = None  # the writer's start time: a reused pid is not the writer


def connection_path(environ: Mapping[str, str]) -> Path:
    return Path(environ.get(FILE_VARIABLE) or DEFAULT_PATH)


def client_variables(dev_env: Mapping[str, str], supplied: Mapping[str, str]) -> dict[str, str]:
    """The variables to write: ``dev``'s own values, but no secret the caller ``supplied``."""
    return {name: dev_env[name] for name in CLIENT_VARIABLES
            if dev_env.get(name) and not (name in SECRET_VARIABLES and name in supplied)}


def write_connection(path: Path, variables: Mapping[str, str], pid: int | None = None) -> None:
    """Atomically, and readable by the owner only: the file may hold dev secrets. The partial file is
    a fresh one (``mkstemp``: created 0600, never an existing file or a symlink's target)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pid = pid or os.getpid()
    descriptor, partial = tempfile.mkstemp(prefix=path.name + ".", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as file:
            json.dump({"pid": pid, "started": _started(pid), "variables": dict(variables)}, file, indent=2)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def remove_connection(path: Path, pid: int | None = None) -> None:
    """Remove the file if this process (``pid``) wrote it; another ``dev``'s file stays."""
    connection = _parse(path)
    if connection is not None and connection.pid == (pid or os.getpid()):
        path.unlink(missing_ok=True)


def read_connection(path: Path, warn: Callable[[str], None]) -> DevConnection | None:
    """The file's settings if its ``dev`` still runs; None (with a warning) for a stale file."""
    connection = _parse(path)
    if connection is None:
        return None
    if connection.started is None or _started(connection.pid) != connection.started:  # gone, or its pid reused
        warn(f"ignoring {path}: the webhooks dev that wrote it (pid {connection.pid}) is not running")
        return None
    return connection


def _started(pid: int) -> float | None:
    """When process ``pid`` started (None: no such process); with the pid, who wrote the file."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _parse(path: Path) -> DevConnection | None:
    try:
        record = json.loads(path.read_text())
        started = record.get("started")
        return DevConnection(int(record["pid"]), {str(k): str(v) for k, v in record["variables"].items()},
                             None if started is None else float(started))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        print(f"webhooks: ignoring {path}: not a connection file written by webhooks dev", file=sys.stderr)
        return None


def command_environ(environ: Mapping[str, str], warn: Callable[[str], None]) -> dict[str, str]:
    """A command's environment: the running ``dev``'s connection settings under the caller's own."""
    connection = read_connection(connection_path(environ), warn)
    return {**(connection.variables if connection else {}), **environ}
