"""The served OpenAPI documents hold for the running services (schemathesis, real processes)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import TEST_API_TOKEN, TEST_STRIPE_SECRET, TEST_WEBHOOK_SECRET, Deps, new_database
from tests.processes import sync_service

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def api_schema(deps: Deps, template_database: str) -> Iterator[schemathesis.schemas.BaseSchema]:
    env = {"INTERNAL_TOKEN": "internal-test-token", "API_TOKENS": TEST_API_TOKEN,
           "DATABASE_URLS": ",".join(new_database(deps, template_database) for _ in range(2))}
    with sync_service("api", env) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


@pytest.fixture(scope="module")
def ingest_schema(deps: Deps) -> Iterator[schemathesis.schemas.BaseSchema]:
    env = {"WEBHOOK_SECRETS": TEST_WEBHOOK_SECRET, "STRIPE_WEBHOOK_SECRETS": TEST_STRIPE_SECRET,
           "KAFKA_BOOTSTRAP_SERVERS": deps.kafka_bootstrap_servers,
           "TOPIC_PREFIX": "openapi.", "WEBHOOK_MODE": "kafka"}
    with sync_service("ingest", env) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


FAST = settings(max_examples=int(os.environ.get("OPENAPI_EXAMPLES", "25")), deadline=None,
                suppress_health_check=list(HealthCheck))


def hold_to_document(schema: schemathesis.schemas.BaseSchema, headers: dict[str, str]) -> list[str]:
    """Every operation of the document, with generated requests; schemathesis's own pytest
    integration does not run under pytest 9, so its strategies are driven with Hypothesis here."""
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @FAST
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()
        checked.append(operation.label)
    return checked


def test_the_api_honours_its_document(api_schema: schemathesis.schemas.BaseSchema) -> None:
    checked = hold_to_document(api_schema, {"Authorization": f"Bearer {TEST_API_TOKEN}"})
    assert {"POST /orders", "GET /orders/{order_id}", "POST /internal/updates/orders", "GET /readyz"} <= set(checked)


def test_ingest_honours_its_document(ingest_schema: schemathesis.schemas.BaseSchema) -> None:
    checked = hold_to_document(ingest_schema, {})
    assert {"POST /webhooks/payments/orders", "POST /webhooks/payments/disputes",
            "POST /webhooks/stripe"} <= set(checked)
