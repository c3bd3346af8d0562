"""The ingest application: the webhook endpoints in front, Quart for everything else."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import cast

from quart import Response
from quart_trio import QuartTrio

from ingest.processors import Processor
from ingest.providers.provider import Provider
from ingest.providers.standard_webhooks import StandardWebhooks
from ingest.providers.stripe import Stripe
from ingest.webhook_endpoint import ASGIApp, WebhookEndpoint
from shared.errors import WebhookError
from shared.messages import DisputeWebhook, OrderWebhook, encode_json, json_schema
from shared.openapi import ingest_document
from shared.probes import Check, probes_blueprint
from shared.problems import problem_body
from shared.settings import Settings

SCHEMAS = {"order-webhook.json": OrderWebhook, "dispute-webhook.json": DisputeWebhook}


def create_app(settings: Settings, processor: Processor, checks: Mapping[str, Check], *,
               deadline_seconds: float, deadline_error: Callable[[], WebhookError]) -> WebhookEndpoint:
    app = QuartTrio(__name__)
    app.register_blueprint(probes_blueprint(checks))

    @app.get("/openapi.json")
    async def openapi() -> Response:
        return Response(encode_json(ingest_document()), content_type="application/json")

    @app.get("/schemas/<name>")
    async def schema(name: str) -> Response:
        if name not in SCHEMAS:
            return Response(problem_body(404, "Not found", f"no schema named {name}"), status=404,
                            content_type="application/problem+json")
        return Response(encode_json(json_schema(SCHEMAS[name])), content_type="application/schema+json")

    # QuartTrio is an ASGI app; WebhookEndpoint's ASGIApp types its messages as plain dicts
    return WebhookEndpoint(processor, providers(settings), cast(ASGIApp, app), deadline_seconds=deadline_seconds,
                           deadline_error=deadline_error)


def providers(settings: Settings) -> dict[str, Provider]:
    """Each webhook route and the provider behind it; secrets are revealed for the HMAC only."""
    keys = [key.reveal() for key in settings.webhook_secrets]
    return {"/webhooks/payments/orders": StandardWebhooks(keys, OrderWebhook),
            "/webhooks/payments/disputes": StandardWebhooks(keys, DisputeWebhook),
            "/webhooks/stripe": Stripe([key.reveal().encode() for key in settings.stripe_webhook_secrets])}
