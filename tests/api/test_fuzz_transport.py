"""Raw request heads, as any client may send them: no 5xx, the server keeps serving, nothing written.

httpx only sends well-formed HTTP; these examples write octets to the socket: any method, target and
version, headers hypercorn acts on (Content-Length, Transfer-Encoding, Connection, Upgrade with h2c
and websocket, HTTP2-Settings, Expect) with plausible and garbled values, and stray bytes after the
head. One such connection used to end the whole server (see test_connections.py).
"""

from __future__ import annotations

import base64
import re
import socket
from urllib.parse import urlsplit

from hypothesis import given, note, settings
from hypothesis import strategies as st

from tests.api.api_process import INTERNAL, PUBLIC, ApiProcess

READ_SECONDS = 3.0
_STATUS_LINE = re.compile(rb"^HTTP/\d(?:\.\d)? (\d{3})", re.MULTILINE)

octets = st.binary(max_size=60).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b""))
PLAUSIBLE: dict[bytes, list[bytes]] = {
    b"Host": [b"api", b"", b"api:80", b"a b"],
    b"Authorization": [PUBLIC.encode(), INTERNAL.encode(), b"Bearer", b"Basic Zm9vOmJhcg=="],
    b"Content-Type": [b"application/json", b"application/x-protobuf", b"text/plain"],
    b"Content-Length": [b"0", b"2", b"64", b"-1", b"99999999999999999999", b"1e3", b" 5", b"0x10", b"2, 2"],
    b"Transfer-Encoding": [b"chunked", b"gzip", b"chunked, chunked", b"identity", b"gzip, chunked"],
    b"Connection": [b"Upgrade", b"close", b"keep-alive", b"Upgrade, HTTP2-Settings"],
    b"Upgrade": [b"h2c", b"websocket", b"h2c, websocket", b"HTTP/2.0", b"WebSocket"],
    b"HTTP2-Settings": [b"AAMAAABkAARAAAAAAAIAAAAA", b"%%%", b"", b"AAMAAABk"],
    b"Sec-WebSocket-Key": [b"dGhlIHNhbXBsZSBub25jZQ==", b"!!"],
    b"Sec-WebSocket-Version": [b"13", b"99"],
    b"Expect": [b"100-continue", b"200-ok"],
    b"Idempotency-Key": [b"key-1"],
}
TEMPLATES = [  # heads hypercorn treats specially, completed and garbled by the examples
    [(b"Host", b"api"), (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket"), (b"Sec-WebSocket-Version", b"13"),
     (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ==")],
    [(b"Host", b"api"), (b"Connection", b"Upgrade, HTTP2-Settings"), (b"Upgrade", b"h2c"),
     (b"HTTP2-Settings", b"AAMAAABkAARAAAAAAAIAAAAA")],
    [(b"Host", b"api"), (b"Content-Type", b"application/json"), (b"Content-Length", b"2")],
    [(b"Host", b"api"), (b"Transfer-Encoding", b"chunked")],
    [(b"Host", b"api"), (b"Expect", b"100-continue"), (b"Content-Length", b"2")],
    [],
]


@st.composite
def header_lines(draw: st.DrawFn) -> tuple[bytes, bytes]:
    name = draw(st.sampled_from(list(PLAUSIBLE)) | octets.map(lambda raw: raw or b"X"))
    value = draw(st.sampled_from(PLAUSIBLE.get(name, [b""])) | octets
                 | st.binary(max_size=48).map(lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=")))
    return name, value


@st.composite
def raw_requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"OPTIONS", b"PRI", b"CONNECT"]) | octets)
    target = draw(st.sampled_from([b"/healthz", b"/readyz?x", b"/metrics", b"/orders", b"/orders/fuzz-order",
                                   b"/disputes/fuzz-dispute", b"/internal/updates/orders",
                                   b"/internal/updates/disputes", b"*", b"http://api/orders/x", b"/%", b"//"])
                  | octets.map(lambda raw: b"/" + raw.replace(b" ", b"")))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/9.9", b""]))
    lines = draw(st.sampled_from(TEMPLATES)) + draw(st.lists(header_lines(), max_size=6))
    lines = draw(st.permutations(lines)) if draw(st.booleans()) else lines
    head = b" ".join(part for part in (method, target, version) if part) + b"\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in lines) + b"\r\n"
    return head + draw(st.sampled_from([b"", b"x", b"{}", b"2\r\n{}\r\n0\r\n\r\n"]) | st.binary(max_size=200))


def exchange(url: str, request: bytes) -> bytes:
    """Send ``request``, say no more (half-close), and read whatever comes back until the server closes."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=READ_SECONDS) as sock:
        received = b""
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError, BrokenPipeError):
            pass  # the server may wait on a half-closed connection, or drop it: both are its right
        return received


def acceptable(status: int, request: bytes) -> bool:
    """No 5xx, but for the one RFC 9112 (§6.1) asks for: 501 to a transfer coding the server does not
    implement (h11 answers so, before any of our code, for anything but a single ``chunked``)."""
    return status < 500 or (status == 501 and b"\ntransfer-encoding:" in request.lower())


_previous: list[bytes] = [b""]


@settings(max_examples=1000, deadline=None)
@given(request=raw_requests())
def test_raw_requests_never_a_5xx_never_the_end_of_the_server(api_process: ApiProcess, request: bytes) -> None:
    note(f"request: {request!r}")  # Hypothesis prints no arguments
    note(f"the request before (a server may die a moment after its answer): {_previous[0]!r}")
    _previous[0] = request
    answered = exchange(api_process.url, request)
    statuses = [int(status) for status in _STATUS_LINE.findall(answered)]
    assert all(acceptable(status, request) for status in statuses), answered[:500]
    api_process.assert_alive()
    api_process.assert_nothing_written()
