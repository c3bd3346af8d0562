"""A malformed connection ends itself, never the server (hypercorn's trio worker let its error escape)."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
import trio

H2C_UPGRADE_BAD_SETTINGS = (b"GET /healthz HTTP/1.1\r\nHost: api\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                            b"Upgrade: h2c\r\nHTTP2-Settings: %%not-base64\r\n\r\n")
WEBSOCKET_UPGRADE_TRAILING_BYTES = (b"GET /healthz HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\n"
                                    b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                                    b"Sec-WebSocket-Key: bKdPyn3u98cTfZJSh4TNeQ==\r\n\r\nx")


async def _send_and_drain(url: str, data: bytes) -> None:
    parts = urlsplit(url)
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    try:
        await stream.send_all(data)
        with trio.move_on_after(2):
            while await stream.receive_some():
                pass
    except trio.BrokenResourceError:  # the server reset the connection: that is its right
        pass
    finally:
        await stream.aclose()


@pytest.mark.parametrize("data", [H2C_UPGRADE_BAD_SETTINGS, WEBSOCKET_UPGRADE_TRAILING_BYTES],
                         ids=["h2c-upgrade-bad-settings", "websocket-upgrade-trailing-bytes"])
async def test_a_malformed_connection_does_not_end_the_server(api_url: str, data: bytes) -> None:
    with trio.fail_after(20):
        await _send_and_drain(api_url, data)
        async with httpx.AsyncClient(base_url=api_url, timeout=5) as client:
            assert (await client.get("/healthz")).status_code == 200


async def _response_head(url: str, head: bytes) -> bytes:
    """The response head to a request whose body (2 bytes, announced) has not been sent yet."""
    parts = urlsplit(url)
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    try:
        await stream.send_all(head + b"Host: api\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received:
            received += await stream.receive_some()
        return received.partition(b"\r\n\r\n")[0].lower()
    finally:
        await stream.aclose()


@pytest.mark.parametrize("head", [b"POST /orders HTTP/1.1\r\n", b"POST /no/such/route HTTP/1.1\r\n",
                                  b"POST /healthz HTTP/1.1\r\n"], ids=["401", "404", "405"])
async def test_an_answer_before_the_body_closes_the_connection(api_url: str, head: bytes) -> None:
    """Quart answers these before reading the body; when the body came after the answer, the connection was
    neither reused nor closed, and the client's next request on it hung (httpx: 1 in ~20 refused POSTs)."""
    with trio.fail_after(20):
        response = await _response_head(api_url, head)
        assert b"\r\nconnection: close" in response, response


async def test_an_answer_after_the_body_keeps_the_connection(client: httpx.AsyncClient) -> None:
    with trio.fail_after(20):
        for _ in range(3):  # a body that was read (400), and requests with none (401, 404): one connection
            assert (await client.post("/orders", content=b"{}")).status_code in (400, 415)
            assert (await client.get("/orders/missing")).status_code == 404
            assert "connection" not in (await client.get("/orders/missing")).headers
