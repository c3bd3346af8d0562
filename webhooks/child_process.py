"""Child processes that never outlive their parent.

Every child gets ``PR_SET_PDEATHSIG``, so even a ``kill -9`` of the parent takes
the children down; a normal exit stops each child with its own polite signal
(postgres: SIGINT = fast shutdown) and a grace period before SIGKILL.

The kernel ties that signal to the *thread* that forked, not the process, and
``trio.lowlevel.open_process`` forks from a worker thread that trio retires when
idle — which would stop the child at a random moment. So children are forked
here, on the trio thread (``Popen`` returns in about a millisecond), and waited for
through a pidfd, which trio can wait on without a thread.
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


class ChildProcess:
    """A ``subprocess.Popen`` whose exit trio can await."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.args = popen.args
        self.stdout = _stdout_stream(popen)
        self._pidfd = os.pidfd_open(popen.pid)

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def send_signal(self, sig: int) -> None:
        self.popen.send_signal(sig)

    def kill(self) -> None:
        self.popen.kill()

    async def wait(self) -> int:
        if self.popen.poll() is None:
            await trio.lowlevel.wait_readable(self._pidfd)
        return self.popen.wait()

    def close(self) -> None:
        os.close(self._pidfd)
        if self.stdout is not None:
            self.popen.stdout.close()  # type: ignore[union-attr]


def _stdout_stream(popen: subprocess.Popen[bytes]) -> trio.lowlevel.FdStream | None:
    if popen.stdout is None:
        return None
    return trio.lowlevel.FdStream(os.dup(popen.stdout.fileno()))


def spawn(argv: Sequence[str], *, stop_signal: signal.Signals = signal.SIGTERM, **popen_kwargs: object) -> ChildProcess:
    """Fork ``argv`` from the calling (trio) thread, to die with this process."""
    return ChildProcess(subprocess.Popen(  # noqa: S603 - argv comes from our own code
        list(argv), stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent(stop_signal),
        start_new_session=True,  # terminal signals reach only us; we stop children in order
        **popen_kwargs,  # type: ignore[arg-type]
    ))


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
) -> AsyncIterator[ChildProcess]:
    """Start ``argv``; on exit send ``stop_signal``, wait ``grace_seconds``, then kill."""
    process = spawn(argv, stop_signal=stop_signal, env=dict(env) if env is not None else None, user=user,
                    stdout=stdout, stderr=stderr)
    try:
        yield process
    finally:
        with trio.CancelScope(shield=True):
            await stop_child(process, stop_signal, grace_seconds)
        process.close()


async def stop_child(process: ChildProcess, stop_signal: signal.Signals, grace_seconds: float) -> int:
    """Stop politely, then by force; returns the exit code."""
    if process.returncode is None:
        process.send_signal(stop_signal)
        with trio.move_on_after(grace_seconds):
            return await process.wait()
        process.kill()
    return await process.wait()


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
