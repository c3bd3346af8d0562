"""``POST /internal/updates/batch``: many updates in one exchange, one answer per item.

Ingest's forwarder sends the updates of concurrent webhooks together, so that the api's HTTP
layer — its bottleneck, not PostgreSQL — is paid once per batch instead of once per webhook.
Like the single-update endpoint it is a thin ASGI callable in front of the rest: bearer token,
media type (JSON or Protobuf), size, decode, apply through the shard writers, answer.
The batch as a whole is refused (problem JSON, nothing applied) only for what is wrong with
it as a whole; otherwise it is 200 and each item carries its own status (``shared.update_batch``).
"""

from __future__ import annotations

from typing import Any

import trio

from api.updates import UpdateApplier
from shared.asgi_body import Receive, Send, media_type, read_body, respond
from shared.auth import check_bearer
from shared.domain import Outcome
from shared.errors import DatabaseUnavailable, InvalidInput, WebhookError
from shared.logs import get_logger
from shared.problems import CONTENT_TYPE as PROBLEM
from shared.problems import INTERNAL_ERROR, asgi_headers, problem_for
from shared.secret import Secret
from shared.tracing import trace_id
from shared.update_batch import (
    ITEM_BODY_BYTES,
    BatchItem,
    ItemResult,
    decode_json_batch,
    decode_protobuf_batch,
    encode_json_results,
    protobuf_results,
)

log = get_logger(__name__)
PATH = "/internal/updates/batch"
JSON, PROTOBUF = b"application/json", b"application/x-protobuf"
REQUEST_DEADLINE_SECONDS = 15.0


async def apply_items(applier: UpdateApplier, items: list[BatchItem | InvalidInput], transport: str
                      ) -> list[ItemResult]:
    """Apply the valid items (the invalid ones change nothing) and answer every item, in order.

    Shared by HTTP and gRPC; a batch that overruns the deadline answers 503 for every item
    (ingest retries it: the items applied meanwhile come back as duplicates)."""
    updates = [item.update for item in items if isinstance(item, BatchItem)]
    with trio.move_on_after(REQUEST_DEADLINE_SECONDS):
        answers = iter(await applier.apply_batch(updates))
        results = []
        for item in items:
            answer: Outcome | WebhookError = next(answers) if isinstance(item, BatchItem) else item
            results.append(ItemResult.of(answer))
            if isinstance(item, BatchItem):
                log.debug("update applied", correlation_id=item.update.correlation_id, event_id=item.update.event_id,
                          outcome=answer.value if isinstance(answer, Outcome) else type(answer).__name__,
                          trace_id=trace_id(item.traceparent or None), transport=transport)
        return results
    late = ItemResult.of(DatabaseUnavailable("the batch was not applied in time"))
    return [late if isinstance(item, BatchItem) else ItemResult.of(item) for item in items]


class BatchUpdatesEndpoint:
    def __init__(self, applier: UpdateApplier, tokens: tuple[Secret, ...], max_items: int, fallback: Any) -> None:
        self._applier = applier
        self._tokens = tokens
        self._max_items = max_items
        self._fallback = fallback

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != PATH:
            await self._fallback(scope, receive, send)
            return
        status, body, extra = await self._respond(scope, receive, dict(scope["headers"]))
        await respond(send, status, body, extra)

    async def _respond(self, scope: dict[str, Any], receive: Receive, headers: dict[bytes, bytes]
                       ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        try:
            check_bearer([value.decode("latin-1") for name, value in scope["headers"] if name == b"authorization"],
                         self._tokens)
            raw = await read_body(scope, receive, headers, (JSON, PROTOBUF), self._max_items * ITEM_BODY_BYTES)
            if media_type(headers) == PROTOBUF:
                results = await apply_items(self._applier, decode_protobuf_batch(raw, self._max_items), "http")
                return 200, protobuf_results(results).SerializeToString(), [(b"content-type", PROTOBUF)]
            results = await apply_items(self._applier, decode_json_batch(raw, self._max_items), "http")
            return 200, encode_json_results(results), [(b"content-type", JSON)]
        except WebhookError as error:
            body, status, extra = problem_for(error)
            return status, body, asgi_headers(extra)
        except Exception:  # noqa: BLE001 - the last line of defence: logged, answered as problem JSON
            log.exception("unexpected error in batch updates", path=scope["path"])
            return 500, INTERNAL_ERROR, [(b"content-type", PROBLEM.encode())]
