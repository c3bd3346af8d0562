"""No input, however malformed, gets a 5xx from ingest or puts a record on a topic (a real ingest process)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.topics import ALL_TOPICS, admin_client, create_topics
from tests.conftest import TEST_WEBHOOK_SECRET, Deps
from tests.ingest.conftest import record_count
from tests.processes import sync_service
from tests.webhook_requests import TEST_SECRET, order_webhook, signed_headers

PARTITIONS = 2


@pytest.fixture(scope="module")
def ingest_process(deps: Deps) -> Iterator[tuple[httpx.Client, str]]:
    prefix = f"fuzz{uuid.uuid4().hex[:6]}."
    create_topics(admin_client(deps.kafka_bootstrap_servers), [prefix + t for t in ALL_TOPICS], PARTITIONS)
    env = {"WEBHOOK_SECRETS": TEST_WEBHOOK_SECRET, "TOPIC_PREFIX": prefix,
           "KAFKA_BOOTSTRAP_SERVERS": deps.kafka_bootstrap_servers, "WEBHOOK_MODE": "kafka"}
    with sync_service("ingest", env) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client, prefix


def _nothing_written(deps: Deps, prefix: str) -> bool:
    return all(record_count(deps.kafka_bootstrap_servers, prefix + topic, PARTITIONS) == 0
               for topic in ("orders.webhooks", "disputes.webhooks"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
wrong_types = st.sampled_from(list(order_webhook())).flatmap(
    lambda field: json_values.map(lambda value: {**order_webhook(), field: value}))
huge = st.sampled_from(["provider_event_id", "order_id", "user_id", "currency"]).map(
    lambda field: {**order_webhook(), field: "x" * 70_000})
bodies = (st.binary(max_size=500) | json_values.map(lambda v: json.dumps(v).encode())
          | wrong_types.map(lambda v: json.dumps(v).encode()) | huge.map(lambda v: json.dumps(v).encode()))


header_octets = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
garbage = (st.text(header_octets, max_size=80) | st.text("0123456789", min_size=1, max_size=400)
           | st.integers(min_value=1, max_value=3000).map(lambda n: " ".join(["v1,AAAA"] * n)))


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, bytes]]]:
    body = draw(bodies)
    way = draw(st.sampled_from(["signed", "wrong-secret", "replayed", "future", "unsigned", "garbled",
                                "duplicated"]))
    if way == "signed":
        headers = signed_headers(body)
    elif way == "wrong-secret":
        headers = signed_headers(body, secret=b"another-secret-0123456")
    elif way in ("replayed", "future"):
        headers = signed_headers(body, timestamp=int(time.time()) + (-3600 if way == "replayed" else 3600))
    elif way == "unsigned":
        headers = {"content-type": "application/json"}
    elif way == "garbled":  # any auth header: octets, hundreds of digits, thousands of signatures
        name = draw(st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"]))
        headers = {**signed_headers(body, secret=TEST_SECRET), name: draw(garbage).strip() or "x"}
    else:  # a signed request with one auth header sent twice
        headers = signed_headers(body, secret=TEST_SECRET)
        name = draw(st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"]))
        return body, [*((k, v.encode("latin-1")) for k, v in headers.items()), (name, headers[name].encode())]
    return body, [(k, v.encode("latin-1")) for k, v in headers.items()]  # raw octets, as they may arrive


@settings(max_examples=250, deadline=None)
@given(request=requests(), path=st.sampled_from(["orders", "disputes"]))
def test_never_a_5xx_never_a_record(ingest_process: tuple[httpx.Client, str], deps: Deps,
                                    request: tuple[bytes, list], path: str) -> None:
    client, prefix = ingest_process
    body, headers = request
    response = client.post(f"/webhooks/payments/{path}", content=body, headers=headers)
    assert response.status_code in (400, 401, 413), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert _nothing_written(deps, prefix)  # after every example, not once at the end
