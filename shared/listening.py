"""Listening sockets bound by us, so a taken port is one clear configuration error.

hypercorn binds deep inside its own nurseries, so a taken port reached the process
runner as an ``OSError`` in nested exception groups and ended in a traceback. Bound
here, before the server starts, it becomes ``PortInUse`` once; the runner, which knows
the variable the port came from, reports it in one line and exits 2. Port 0 binds a
free port: how several copies of a process share one host.
"""

from __future__ import annotations

import errno
import socket


class PortInUse(Exception):
    """Another process listens on the port; the runner names the variable the port came from."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"port {port} is already in use on {host}")
        self.host = host
        self.port = port

    def described(self, variable: str) -> str:
        return f"{variable}={self.port} is already in use on {self.host} (set another port, or 0 for a free one)"


def listen_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one); ``PortInUse`` if it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)  # with SO_REUSEADDR, as hypercorn binds
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(host, port) from exc
        raise
