"""``POST /internal/updates/orders|disputes`` as a thin ASGI callable in front of the Quart app.

The api is CPU-bound in its HTTP layer (the writer actors keep PostgreSQL at ~13 %), so the
hot path skips the framework like ingest's does: bearer token, media type, size, decode
(JSON or Protobuf), apply, answer. Everything else goes to Quart.
"""

from __future__ import annotations

from typing import Any

import trio

from api.updates import UpdateApplier
from shared.asgi_body import Receive, Send, media_type, read_body, respond
from shared.auth import check_bearer
from shared.errors import DatabaseUnavailable, WebhookError
from shared.logs import get_logger
from shared.messages import DisputeUpdate, OrderUpdate, Update, decode_json, encode_json
from shared.problems import CONTENT_TYPE as PROBLEM
from shared.problems import INTERNAL_ERROR, asgi_headers, problem_for
from shared.proto import updates_pb2
from shared.protobuf_codec import decode_protobuf
from shared.secret import Secret
from shared.tracing import trace_id

log = get_logger(__name__)
ROUTES: dict[str, type[Update]] = {"/internal/updates/orders": OrderUpdate, "/internal/updates/disputes": DisputeUpdate}
JSON, PROTOBUF = b"application/json", b"application/x-protobuf"
REQUEST_DEADLINE_SECONDS = 15.0


class InternalUpdatesEndpoint:
    def __init__(self, applier: UpdateApplier, tokens: tuple[Secret, ...], fallback: Any) -> None:
        self._applier = applier
        self._tokens = tokens
        self._fallback = fallback

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        schema = ROUTES.get(scope.get("path", "")) if scope["type"] == "http" else None
        if schema is None:
            await self._fallback(scope, receive, send)
            return
        headers = dict(scope["headers"])
        status, body, extra = await self._respond(scope, receive, schema, headers)
        await respond(send, status, body, extra)

    async def _respond(self, scope: dict[str, Any], receive: Receive, schema: type[Update],
                       headers: dict[bytes, bytes]) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        try:
            check_bearer([value.decode("latin-1") for name, value in scope["headers"] if name == b"authorization"],
                         self._tokens)
            raw = await read_body(scope, receive, headers, (JSON, PROTOBUF))
            protobuf = media_type(headers) == PROTOBUF
            update = decode_protobuf(raw, schema) if protobuf else decode_json(raw, schema)
            with trio.move_on_after(REQUEST_DEADLINE_SECONDS):
                outcome = await self._applier.apply(update)
                traceparent = headers.get(b"traceparent", b"").decode("latin-1")
                log.debug("update applied", correlation_id=update.correlation_id, outcome=outcome.value,
                          event_id=update.event_id, trace_id=trace_id(traceparent))
                if protobuf:
                    return 200, updates_pb2.UpdateResult(outcome=outcome.value).SerializeToString(), [
                        (b"content-type", PROTOBUF)]
                return 200, encode_json({"outcome": outcome.value, "event_id": update.event_id}), [
                    (b"content-type", JSON)]
            raise DatabaseUnavailable("the update was not applied in time")
        except WebhookError as error:
            body, status, extra = problem_for(error)
            return status, body, asgi_headers(extra)
        except Exception:  # noqa: BLE001 - the last line of defence: logged, answered as problem JSON
            log.exception("unexpected error in internal updates", path=scope["path"])
            return 500, INTERNAL_ERROR, [(b"content-type", PROBLEM.encode())]
