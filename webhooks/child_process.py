"""Child processes that never outlive their parent.

Every child is started from the trio thread with ``PR_SET_PDEATHSIG``, so even a
``kill -9`` of the parent takes the children down; a normal exit stops each child
with its own polite signal (postgres: SIGINT = fast shutdown) and a grace period
before SIGKILL.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

import trio

_PR_SET_PDEATHSIG = 1


def _die_with_parent(sig: signal.Signals) -> Callable[[], None]:
    def preexec() -> None:  # runs in the child after fork (and after setuid, when given)
        if sys.platform == "linux":
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig))

    return preexec


@asynccontextmanager
async def open_child(
    argv: Sequence[str],
    *,
    stop_signal: signal.Signals = signal.SIGTERM,
    grace_seconds: float = 10.0,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
) -> AsyncIterator[trio.Process]:
    """Start ``argv``; on exit send ``stop_signal``, wait ``grace_seconds``, then kill."""
    process = await trio.lowlevel.open_process(
        list(argv),
        env=dict(env) if env is not None else None,
        user=user,
        stdout=stdout,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent(stop_signal),
        start_new_session=True,  # terminal signals reach only us; we stop children in order
    )
    try:
        yield process
    finally:
        with trio.CancelScope(shield=True):
            await stop_child(process, stop_signal, grace_seconds)


async def stop_child(process: trio.Process, stop_signal: signal.Signals, grace_seconds: float) -> int:
    """Stop politely, then by force; returns the exit code."""
    if process.returncode is None:
        process.send_signal(stop_signal)
        with trio.move_on_after(grace_seconds):
            return await process.wait()
        process.kill()
    return await process.wait()


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
