"""The server's own ceiling: a bare ASGI callable on the same hypercorn-trio setup as ingest.

It reads the body and answers 202, nothing else. ``python -m webhooks.bench.bare_asgi PORT``.
"""

from __future__ import annotations

import sys
from typing import Any

import trio

from shared.http_server import serve_http
from shared.service import tune_garbage_collector


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 202 if scope["path"] != "/readyz" else 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"status":"accepted"}'})


async def main(port: int) -> None:
    tune_garbage_collector()  # the same process set-up as the services, so only the app differs
    await serve_http(app, "127.0.0.1", port, trio.Event(), grace_seconds=1)


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]))
