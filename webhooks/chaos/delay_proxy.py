"""A TCP proxy between ingest and the api that can make the api slow: the slow-api fault.

Every chunk the api sends back is held until ``delay_seconds`` after it arrived, then passed
on in order — latency added, not throughput taken away (a chunk does not wait for the one
before it to have waited). Requests pass at once. Works for HTTP/1.1 and gRPC's HTTP/2 alike.
"""

from __future__ import annotations

import trio

CHUNK = 65536


class DelayProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.delay_seconds = 0.0

    async def serve(self, port: int, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        task_status.started()
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, client: trio.SocketStream) -> None:
        try:
            upstream = await trio.open_tcp_stream("127.0.0.1", self.upstream_port)
        except OSError:
            await client.aclose()  # the api is down: so is the connection, as without the proxy
            return
        async with client, upstream, trio.open_nursery() as nursery:
            send_chunks, receive_chunks = trio.open_memory_channel[tuple[float, bytes]](64)
            nursery.start_soon(self._pump, client, upstream, nursery.cancel_scope)
            nursery.start_soon(self._read_delayed, upstream, send_chunks, nursery.cancel_scope)
            nursery.start_soon(self._write_delayed, receive_chunks, client, nursery.cancel_scope)

    async def _pump(self, source: trio.SocketStream, target: trio.SocketStream, scope: trio.CancelScope) -> None:
        try:
            while chunk := await source.receive_some(CHUNK):
                await target.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()  # one side closed: the connection is over

    async def _read_delayed(self, source: trio.SocketStream, chunks: trio.MemorySendChannel[tuple[float, bytes]],
                            scope: trio.CancelScope) -> None:
        async with chunks:
            try:
                while chunk := await source.receive_some(CHUNK):
                    await chunks.send((trio.current_time() + self.delay_seconds, chunk))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                scope.cancel()

    async def _write_delayed(self, chunks: trio.MemoryReceiveChannel[tuple[float, bytes]],
                             target: trio.SocketStream, scope: trio.CancelScope) -> None:
        try:
            async for due, chunk in chunks:
                await trio.sleep_until(due)
                await target.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()
