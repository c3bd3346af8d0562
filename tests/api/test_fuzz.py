"""No input, however malformed, yields a 5xx from the api's update endpoints (a real api process)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.api.conftest import INTERNAL
from tests.conftest import TEST_API_TOKEN, TEST_INTERNAL_TOKEN, Deps, new_database
from tests.processes import sync_service


@pytest.fixture(scope="module")
def api_process(deps: Deps, template_database: str) -> Iterator[httpx.Client]:
    env = {"INTERNAL_TOKEN": TEST_INTERNAL_TOKEN, "API_TOKENS": TEST_API_TOKEN,
           "DATABASE_URLS": ",".join(new_database(deps, template_database) for _ in range(2))}
    with sync_service("api", env) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
near_valid = st.fixed_dictionaries({
    "provider_event_id": st.text(max_size=300), "order_id": st.text(max_size=80), "user_id": st.text(max_size=80),
    "status": st.sampled_from(["paid", "PAID", "", "created", "opened"]), "amount": st.integers() | st.floats(),
    "currency": st.text(max_size=4), "occurred_at": st.text(max_size=40), "event_id": st.text(max_size=70),
    "received_at": st.sampled_from(["2026-11-20T12:00:00Z", "yesterday"]),
}).map(json.dumps)
bodies = st.binary(max_size=300) | json_values.map(json.dumps) | near_valid
content_types = st.sampled_from(["application/json", "application/x-protobuf", "text/plain", ""])


@settings(max_examples=200, deadline=None)
@given(body=bodies, content_type=content_types, path=st.sampled_from(["orders", "disputes"]))
def test_never_a_5xx(api_process: httpx.Client, body: str | bytes, content_type: str, path: str) -> None:
    content = body.encode() if isinstance(body, str) else body
    response = api_process.post(f"/internal/updates/{path}", content=content,
                                headers={**INTERNAL, "Content-Type": content_type})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
