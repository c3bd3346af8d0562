"""The api's HTTP application: internal updates (JSON or Protobuf) and the public endpoints."""

from __future__ import annotations

from functools import partial
from typing import Any, cast

import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from api.batch_endpoint import BatchUpdatesEndpoint
from api.internal_endpoint import InternalUpdatesEndpoint
from api.orders_store import NewOrder, create_order, get_dispute, get_order
from api.updates import UpdateApplier
from shared.asgi_body import MAX_BODY_BYTES
from shared.auth import check_bearer
from shared.database import Database
from shared.early_responses import close_after_early_responses
from shared.errors import InvalidInput, NotFound, WebhookError
from shared.logs import get_logger
from shared.messages import decode_json, encode_json, is_valid_id
from shared.openapi import api_document
from shared.probes import probes_blueprint
from shared.problems import INTERNAL_ERROR, problem_body, problem_for
from shared.settings import Settings

log = get_logger(__name__)


def json_response(value: Any, status: int = 200) -> Response:
    return Response(encode_json(value), status=status, content_type="application/json")


def create_app(settings: Settings, database: Database, applier: UpdateApplier) -> BatchUpdatesEndpoint:
    app = QuartTrio(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    checks = {f"shard{index}": partial(database.ping, index) for index in range(database.shard_count)}
    app.register_blueprint(probes_blueprint(checks))
    _register_errors(app)
    _register_public(app, settings, database)
    tokens = (settings.internal_token,) if settings.internal_token else ()
    single = InternalUpdatesEndpoint(applier, tokens, close_after_early_responses(app))
    return BatchUpdatesEndpoint(applier, tokens, settings.api_batch_max, single)



def _register_errors(app: QuartTrio) -> None:
    @app.errorhandler(WebhookError)
    async def webhook_error(error: WebhookError) -> Response:
        body, status, headers = problem_for(error)
        return Response(body, status=status, headers=headers)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        body = problem_body(status, error.name, error.description or error.name)
        return Response(body, status=status, content_type="application/problem+json")

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        log.exception("unhandled error", error=repr(error))
        return Response(INTERNAL_ERROR, status=500, content_type="application/problem+json")


class _UnsupportedMediaType(HTTPException):
    code = 415
    description = "Content-Type must be application/json"


def _register_public(app: QuartTrio, settings: Settings, database: Database) -> None:
    @app.get("/openapi.json")
    async def openapi() -> Response:
        return json_response(api_document())

    @app.before_request
    async def authenticate() -> None:
        if request.path.startswith(("/orders", "/disputes")):
            check_bearer(request.headers.getlist("Authorization"), settings.api_tokens)

    @app.post("/orders")
    async def post_order() -> Response:
        if request.mimetype != "application/json":
            raise _UnsupportedMediaType()
        body = cast(bytes, await request.get_data(cache=False, as_text=False))  # as_text=False: bytes
        order = decode_json(body, NewOrder)
        key = _idempotency_key(request.headers.getlist("Idempotency-Key"))
        stored, created = await create_order(database, order, key)
        return json_response(stored, 201 if created else 200)

    @app.get("/orders/<order_id>")
    async def read_order(order_id: str) -> Response:
        return json_response(await _first_found(database, get_order, order_id, f"order {order_id} not found"))

    @app.get("/disputes/<dispute_id>")
    async def read_dispute(dispute_id: str) -> Response:
        return json_response(await _first_found(database, get_dispute, dispute_id, f"dispute {dispute_id} not found"))


def _idempotency_key(values: list[str]) -> str | None:
    """The request's Idempotency-Key, if any; a repeated one is refused like a repeated Authorization
    (which copy a proxy keeps differs, and the key decides between 200 and 409)."""
    if len(values) > 1:
        raise InvalidInput("Idempotency-Key may appear only once")
    key = values[0] if values else None
    if key is not None and len(key) > 255:
        raise InvalidInput("Idempotency-Key is longer than 255 characters")
    return key or None


async def _first_found(database: Database, query: Any, key: str, missing: str) -> dict[str, Any]:
    """Ask every shard at once (an id alone does not say which shard holds it); an id that no order
    or dispute can have (a NUL, which PostgreSQL text refuses, or too long) is not found, unasked."""
    if not is_valid_id(key):
        raise NotFound("not found: no order or dispute can have that id")
    found: list[dict[str, Any]] = []
    errors: list[WebhookError] = []

    async def ask(shard: int) -> None:
        try:
            if (row := await database.run(shard, query, key)) is not None:
                found.append(row)
        except WebhookError as exc:  # a shard that is down only matters if the row is not elsewhere
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for shard in range(database.shard_count):
            nursery.start_soon(ask, shard)
    if found:
        return found[0]
    raise errors[0] if errors else NotFound(missing)
