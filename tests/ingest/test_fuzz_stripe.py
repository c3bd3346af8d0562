"""POST /webhooks/stripe under hostile input: never a 5xx, and a record on a topic only with a 202
(a real ingest process, kafka mode). Signatures come from the official ``stripe`` package."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.topics import ALL_TOPICS, admin_client, create_topics
from tests.conftest import TEST_STRIPE_SECRET, TEST_WEBHOOK_SECRET, Deps
from tests.ingest.conftest import record_count
from tests.ingest.test_fuzz import garbage, json_values
from tests.processes import sync_service
from tests.stripe_requests import SOURCE_FIXTURE, stripe_event, stripe_headers

PARTITIONS = 2


@pytest.fixture(scope="module")
def ingest_process(deps: Deps) -> Iterator[tuple[httpx.Client, str]]:
    prefix = f"fuzzs{uuid.uuid4().hex[:6]}."
    create_topics(admin_client(deps.kafka_bootstrap_servers), [prefix + t for t in ALL_TOPICS], PARTITIONS)
    env = {"WEBHOOK_SECRETS": TEST_WEBHOOK_SECRET, "STRIPE_WEBHOOK_SECRETS": TEST_STRIPE_SECRET,
           "TOPIC_PREFIX": prefix, "KAFKA_BOOTSTRAP_SERVERS": deps.kafka_bootstrap_servers, "WEBHOOK_MODE": "kafka"}
    with sync_service("ingest", env) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client, prefix


def _records(deps: Deps, prefix: str) -> int:
    return sum(record_count(deps.kafka_bootstrap_servers, prefix + topic, PARTITIONS)
               for topic in ("orders.webhooks", "disputes.webhooks"))


events = st.sampled_from(sorted(SOURCE_FIXTURE)).map(stripe_event)


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A realistic event with one value replaced anywhere in its envelope, object or metadata."""
    event = draw(events)
    where = draw(st.sampled_from(["envelope", "object", "metadata"]))
    target = {"envelope": event, "object": event["data"]["object"],
              "metadata": event["data"]["object"].setdefault("metadata", {})}[where]
    key = draw(st.sampled_from(sorted(target) + ["order_id", "user_id", "status", "payment_intent"]))
    if draw(st.booleans()):
        target.pop(key, None)
    else:
        target[key] = draw(json_values | st.just("x" * 70_000))
    return event


bodies = (st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())
          | mutated_events().map(lambda v: json.dumps(v).encode()) | events.map(lambda v: json.dumps(v).encode()))


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, bytes]]]:
    body = draw(bodies)
    way = draw(st.sampled_from(["signed", "wrong-secret", "replayed", "unsigned", "garbled", "duplicated"]))
    headers = stripe_headers(body)
    if way == "wrong-secret":
        headers = stripe_headers(body, secret="whsec_someoneelsessecret0000")
    elif way == "replayed":
        headers = stripe_headers(body, timestamp=int(time.time()) - 3600)
    elif way == "unsigned":
        headers = {"content-type": "application/json"}
    elif way == "garbled":
        headers["stripe-signature"] = draw(garbage | st.integers(1, 3000).map(
            lambda n: "t=1," + ",".join(["v1=00"] * n))).strip() or "x"
    elif way == "duplicated":
        return body, [*((k, v.encode("latin-1")) for k, v in headers.items()),
                      ("stripe-signature", headers["stripe-signature"].encode())]
    return body, [(k, v.encode("latin-1")) for k, v in headers.items()]


@settings(max_examples=200, deadline=None)
@given(request=requests())
def test_never_a_5xx_and_a_record_only_with_a_202(ingest_process: tuple[httpx.Client, str], deps: Deps,
                                                 request: tuple[bytes, list]) -> None:
    client, prefix = ingest_process
    body, headers = request
    before = _records(deps, prefix)
    response = client.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code in (200, 202, 400, 401, 413, 422), response.text
    expected_type = "application/json" if response.status_code in (200, 202) else "application/problem+json"
    assert response.headers["content-type"] == expected_type
    assert _records(deps, prefix) == before + (response.status_code == 202)
