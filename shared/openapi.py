"""OpenAPI 3.1 documents of ingest's and the api's HTTP endpoints, from the msgspec schemas in use.

The request and response bodies are the very Structs that validate and encode them,
so the documents cannot drift from the code; ``GET /openapi.json`` serves them and
the tests hold the running services to them (schemathesis).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from shared.messages import Amount, Currency, DisputeUpdate, DisputeWebhook, Id, OrderUpdate, OrderWebhook
from shared.stripe_events import StripeEvent

_ApiCalled = Annotated[bool, msgspec.Meta(description=(
    "ingest's circuit-open (503) only: false when refused without calling the api; true when the "
    "webhook's call had gone to the api and failed, and the circuit breaker refused its retry"))]


class Problem(msgspec.Struct, kw_only=True):
    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] = []
    api_called: _ApiCalled | msgspec.UnsetType = msgspec.UNSET


class Accepted(msgspec.Struct, kw_only=True):
    status: str
    event_id: str


class IgnoredEvent(msgspec.Struct, kw_only=True):
    """A provider's verified event we do not act on (200: the provider stops retrying)."""

    status: Literal["ignored"]


class UpdateOutcome(msgspec.Struct, kw_only=True):
    outcome: str
    event_id: str


class NewOrderBody(msgspec.Struct, kw_only=True):
    order_id: Id
    user_id: Id
    amount: Amount
    currency: Currency


class EventView(msgspec.Struct, kw_only=True):
    provider_event_id: str
    status: str
    occurred_at: dt.datetime
    received_at: dt.datetime
    applied: bool


class OrderSummary(msgspec.Struct, kw_only=True):
    order_id: str
    user_id: str
    status: str
    amount: int
    currency: str
    created_at: dt.datetime
    updated_at: dt.datetime


class OrderView(OrderSummary, kw_only=True):
    events: list[EventView]


class DisputeView(OrderView, kw_only=True):
    dispute_id: str
    reason: str


PROBES = ("/healthz", "/readyz")


def _components(*types: type) -> dict[str, Any]:
    _, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    return components


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(name)}}}


def _problems(*statuses: int) -> dict[str, Any]:
    return {str(status): {"description": "problem details (RFC 9457)",
                          "content": {"application/problem+json": {"schema": _ref("Problem")}}}
            for status in statuses}


def _probes() -> dict[str, Any]:
    paths: dict[str, Any] = {path: {"get": {"responses": {
        "200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}},
        "503": {"description": "a dependency is not answering",
                "content": {"application/json": {"schema": {"type": "object"}}}}}}} for path in PROBES}
    paths["/metrics"] = {"get": {"responses": {"200": {"description": "Prometheus text format",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}}}}}
    return paths


def _document(title: str, paths: dict[str, Any], components: dict[str, Any],
              security: dict[str, Any]) -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": title, "version": "1"}, "paths": {**paths, **_probes()},
            "components": {"schemas": components, "securitySchemes": security}}


SIGNATURE_HEADERS = [{"name": name, "in": "header", "required": True, "schema": {"type": "string"},
                      "description": description} for name, description in (
    ("webhook-id", "the provider's message id"), ("webhook-timestamp", "unix seconds, within ±5 minutes"),
    ("webhook-signature", "v1,<base64 HMAC-SHA256 of '{id}.{timestamp}.{body}'>, space-separated"))]
STRIPE_SIGNATURE_HEADERS = [{"name": "Stripe-Signature", "in": "header", "required": True, "schema": {"type": "string"},
                             "description": "t=<unix seconds, within ±5 minutes>,v1=<hex HMAC-SHA256 of '{t}.{body}' "
                                            "keyed with the literal whsec_… text>[,v1=…]"}]


def ingest_document() -> dict[str, Any]:
    def webhook(schema: str, headers: list[dict[str, Any]] = SIGNATURE_HEADERS,
                duplicate: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"post": {
            "parameters": headers,
            "requestBody": {"required": True, **_json(schema)},
            "responses": {"202": {"description": "accepted (kafka: acknowledged by the broker)", **_json("Accepted")},
                          "200": duplicate or {"description": "duplicate (sync modes)", **_json("Accepted")},
                          **_problems(400, 401, 404, 413, 415, 422, 502, 503, 504)}}}

    stripe_200 = {"description": "duplicate (sync modes), or an event type we do not act on (ignored)",
                  "content": {"application/json": {"schema": {"anyOf": [_ref("Accepted"), _ref("IgnoredEvent")]}}}}
    paths = {"/webhooks/payments/orders": webhook("OrderWebhook"),
             "/webhooks/payments/disputes": webhook("DisputeWebhook"),
             # 404 also when STRIPE_WEBHOOK_SECRETS is unset (provider-not-configured); 422: unmappable event
             "/webhooks/stripe": webhook("StripeEvent", STRIPE_SIGNATURE_HEADERS, stripe_200),
             "/schemas/{name}": {"get": {"parameters": [{"name": "name", "in": "path", "required": True,
                                                         "schema": {"type": "string"}}],
                                         "responses": {"200": {"description": "a JSON Schema",
                                                               "content": {"application/schema+json": {
                                                                   "schema": {"type": "object"}}}},
                                                       **_problems(404)}}}}
    components = _components(OrderWebhook, DisputeWebhook, StripeEvent, Accepted, IgnoredEvent, Problem)
    return _document("payment webhooks: ingest", paths, components, {})


def api_document() -> dict[str, Any]:
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]

    def update(schema: str) -> dict[str, Any]:
        return {"post": {"security": bearer, "requestBody": {"required": True, "content": {
            "application/json": {"schema": _ref(schema)},
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": {"200": {"description": "applied or stale", **_json("UpdateOutcome")},
                          **_problems(400, 401, 404, 409, 413, 415, 422, 503)}}}

    def read(name: str, view: str) -> dict[str, Any]:
        return {"get": {"security": bearer,
                        "parameters": [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}],
                        "responses": {"200": {"description": "found on whichever shard holds it", **_json(view)},
                                      **_problems(401, 404, 503)}}}

    paths = {
        "/orders": {"post": {"security": bearer, "requestBody": {"required": True, **_json("NewOrderBody")},
                             "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                             "schema": {"type": "string", "maxLength": 255}}],
                             "responses": {"201": {"description": "created", **_json("OrderSummary")},
                                           "200": {"description": "same Idempotency-Key: the same order",
                                                   **_json("OrderSummary")},
                                           **_problems(400, 401, 409, 413, 415, 503)}}},
        "/orders/{order_id}": read("order_id", "OrderView"),
        "/disputes/{dispute_id}": read("dispute_id", "DisputeView"),
        "/internal/updates/orders": update("OrderUpdate"),
        "/internal/updates/disputes": update("DisputeUpdate"),
    }
    components = _components(NewOrderBody, OrderSummary, OrderView, DisputeView, OrderUpdate, DisputeUpdate,
                             UpdateOutcome, Problem)
    return _document("payment webhooks: api", paths, components,
                     {"bearer": {"type": "http", "scheme": "bearer",
                                 "description": "API_TOKENS for /orders and /disputes; INTERNAL_TOKEN for /internal"}})
