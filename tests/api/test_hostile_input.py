"""Inputs the fuzz tests found: each answered by a 4xx problem, none writes (the api in-process, real PostgreSQL)."""

from __future__ import annotations

import httpx
import pytest
import trio

from shared.messages import encode_json
from tests.api.conftest import INTERNAL
from tests.api.updates import at, create_order, order_update
from tests.conftest import TEST_API_TOKEN

PUBLIC = f"Bearer {TEST_API_TOKEN}"
NEW_ORDER = {"order_id": "o1", "user_id": "u1", "amount": 1000, "currency": "EUR"}


def _problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()


@pytest.mark.parametrize(("field", "value"), [("currency", "EUR\n"), ("order_id", "o1\n"), ("user_id", "u1\n")],
                         ids=["currency", "order_id", "user_id"])
async def test_a_trailing_newline_is_invalid_when_creating_an_order(client: httpx.AsyncClient, field: str,
                                                                     value: str) -> None:
    """Python's ``$`` matches before a final newline: "EUR\\n" passed as a currency and PostgreSQL's
    char(3) refused it (500); "o1\\n" passed as an id free of control characters (201)."""
    with trio.fail_after(30):
        problem = _problem(await client.post("/orders", json={**NEW_ORDER, field: value}), 400)
        assert problem["errors"][0]["field"] == field  # type: ignore[index]
        assert (await client.get("/orders/o1")).status_code == 404


async def test_a_trailing_newline_is_invalid_in_an_update(client: httpx.AsyncClient) -> None:
    with trio.fail_after(30):
        await create_order(client, "o1", "u1")
        update = order_update("o1", "u1", "paid", at(1), currency="EUR\n")
        response = await client.post("/internal/updates/orders", content=encode_json(update),
                                     headers={**INTERNAL, "Content-Type": "application/json"})
        assert _problem(response, 400)["errors"] == [{"field": "currency",
                                                      "message": "must be 3 upper-case letters (ISO 4217)"}]
        assert (await client.get("/orders/o1")).json()["events"] == []


async def test_a_repeated_authorization_is_refused_by_the_public_endpoints(api_url: str) -> None:
    """Quart used the first copy (here the valid one): 201."""
    with trio.fail_after(30):
        async with httpx.AsyncClient(base_url=api_url, timeout=30) as anonymous:
            twice = [("Authorization", PUBLIC), ("Authorization", "Bearer not-a-token")]
            _problem(await anonymous.post("/orders", json=NEW_ORDER, headers=twice), 401)
            _problem(await anonymous.get("/orders/o1", headers=[("Authorization", PUBLIC)] * 2), 401)
            assert (await anonymous.get("/orders/o1", headers={"Authorization": PUBLIC})).status_code == 404


async def test_a_repeated_authorization_is_refused_by_the_internal_endpoints(client: httpx.AsyncClient) -> None:
    """The thin endpoint used the last copy (here the valid one): the update was applied."""
    with trio.fail_after(30):
        await create_order(client, "o1", "u1")
        twice = [("Authorization", "Bearer not-a-token"), ("Authorization", INTERNAL["Authorization"]),
                 ("Content-Type", "application/json")]
        response = await client.post("/internal/updates/orders", headers=twice,
                                     content=encode_json(order_update("o1", "u1", "paid", at(1))))
        _problem(response, 401)
        assert (await client.get("/orders/o1")).json()["status"] == "created"


async def test_a_repeated_idempotency_key_is_refused(client: httpx.AsyncClient) -> None:
    """Which copy decides between 200 and 409 would depend on the proxy; Quart used the first (201)."""
    with trio.fail_after(30):
        twice = [("Idempotency-Key", "k1"), ("Idempotency-Key", "k2")]
        assert "Idempotency-Key" in str(_problem(await client.post("/orders", json=NEW_ORDER, headers=twice),
                                                 400)["detail"])
        assert (await client.get("/orders/o1")).status_code == 404
