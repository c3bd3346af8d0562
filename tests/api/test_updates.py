"""Every outcome of /internal/updates/* over HTTP, in JSON and in Protobuf, on real PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
import trio

from tests.api.conftest import INTERNAL
from tests.api.updates import at, create_order, dispute_update, order_update, outcome, send

ENCODINGS = ["json", "protobuf"]


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_order_outcomes(client: httpx.AsyncClient, encoding: str) -> None:
    await create_order(client, "o1", "u1")
    paid = order_update("o1", "u1", "paid", at(10))
    first = await send(client, paid, encoding)
    assert first.status_code == 200 and outcome(first, encoding) == "applied"
    assert (await send(client, paid, encoding)).status_code == 409  # duplicate
    stale = await send(client, order_update("o1", "u1", "authorized", at(5)), encoding)
    assert stale.status_code == 200 and outcome(stale, encoding) == "stale"
    invalid = await send(client, order_update("o1", "u1", "pending", at(20)), encoding)
    assert invalid.status_code == 422 and invalid.headers["content-type"] == "application/problem+json"
    assert invalid.json()["title"] == "Invalid state transition"
    mismatch = await send(client, order_update("o1", "someone-else", "refunded", at(30)), encoding)
    assert mismatch.status_code == 422 and mismatch.json()["title"] == "User mismatch"
    missing = await send(client, order_update("nope", "u1", "paid", at(30)), encoding)
    assert missing.status_code == 404

    order = (await client.get("/orders/o1")).json()
    assert order["status"] == "paid"
    assert [(e["status"], e["applied"]) for e in order["events"]] == [("authorized", False), ("paid", True)]


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_dispute_outcomes(client: httpx.AsyncClient, encoding: str) -> None:
    await create_order(client, "o2", "u2")
    assert (await send(client, dispute_update("d1", "o2", "u2", "won", at(1)), encoding)).status_code == 404
    assert (await send(client, dispute_update("d1", "nope", "u2", "opened", at(1)), encoding)).status_code == 404
    assert (await send(client, dispute_update("d1", "o2", "u9", "opened", at(1)), encoding)).status_code == 422
    opened = dispute_update("d1", "o2", "u2", "opened", at(1))
    assert (await send(client, opened, encoding)).status_code == 200
    assert (await send(client, opened, encoding)).status_code == 409
    required = dispute_update("d1", "o2", "u2", "evidence_required", at(2))
    assert (await send(client, required, encoding)).status_code == 200
    assert (await send(client, dispute_update("d1", "o2", "u2", "won", at(3)), encoding)).status_code == 422
    assert (await send(client, dispute_update("d1", "o2", "u2", "lost", at(4), reason="no evidence"),
                       encoding)).status_code == 200
    dispute = (await client.get("/disputes/d1")).json()
    assert (dispute["status"], dispute["reason"], dispute["order_id"]) == ("lost", "no evidence", "o2")
    assert [e["status"] for e in dispute["events"]] == ["opened", "evidence_required", "lost"]


async def test_bad_requests_change_nothing(client: httpx.AsyncClient) -> None:
    await create_order(client, "o3", "u3")
    post = client.post
    url = "/internal/updates/orders"
    json_headers = {**INTERNAL, "Content-Type": "application/json"}
    assert (await post(url, content=b"{}", headers={"Content-Type": "application/json"})).status_code == 401
    assert (await post(url, content=b"{}", headers={**json_headers, "Authorization": "Bearer wrong-token"})
            ).status_code == 401
    assert (await post(url, content=b"{}", headers={**INTERNAL, "Content-Type": "text/plain"})).status_code == 415
    assert (await post(url, content=b"x" * 70_000, headers=json_headers)).status_code == 413
    not_json = await post(url, content=b"{nope", headers=json_headers)
    assert not_json.status_code == 400 and not_json.json()["errors"][0]["field"] == "$"
    body = order_update("o3", "u3", "paid", at(1))
    import msgspec

    wrong = msgspec.json.decode(msgspec.json.encode(body))
    wrong["amount"] = 10.5
    response = await post(url, json=wrong, headers=INTERNAL)
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "amount", "message": "Expected `int`, got `float`"}]
    naive = {**wrong, "amount": 5, "occurred_at": "2026-11-20T12:00:00"}
    assert (await post(url, json=naive, headers=INTERNAL)).json()["errors"][0]["field"] == "occurred_at"
    protobuf = {**INTERNAL, "Content-Type": "application/x-protobuf"}
    garbage = await post(url, content=b"\xff\x00garbage", headers=protobuf)
    assert garbage.status_code == 400
    assert (await client.get("/orders/o3")).json()["events"] == []


async def test_twenty_concurrent_deliveries_apply_once(client: httpx.AsyncClient) -> None:
    await create_order(client, "o4", "u4")
    update = order_update("o4", "u4", "paid", at(1))
    statuses: list[int] = []

    async def deliver() -> None:
        statuses.append((await send(client, update)).status_code)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(deliver)
    assert sorted(statuses) == [200] + [409] * 19
    assert len((await client.get("/orders/o4")).json()["events"]) == 1
