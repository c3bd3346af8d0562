"""``POST /internal/updates/batch`` (JSON and Protobuf) and gRPC ``SendUpdates`` against the api on real
PostgreSQL, through ingest's own clients: every outcome in one batch, a batch sent twice, refused batches."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
import trio
import trio_asyncio

from api.service import serve_api
from ingest.api_client import HttpApiClient
from ingest.grpc_client import GrpcApiClient
from ingest.update_forwarder import answer_for
from shared.domain import Outcome
from shared.errors import BadGateway, InvalidInput, InvalidTransition, NotFound, UserMismatch
from shared.messages import InboundUpdate
from shared.settings import Settings
from shared.update_batch import BatchItem, ItemResult, encode_json_batch
from tests.api.conftest import INTERNAL
from tests.api.updates import at, create_order, dispute_update, order_update, payment_dispute_update, send
from tests.conftest import TEST_API_TOKEN
from webhooks.embedded import free_port

TRANSPORTS = ["json", "protobuf", "grpc"]
URL = "/internal/updates/batch"


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[tuple[Settings, httpx.AsyncClient, trio_asyncio.TrioEventLoop]]:
    """The api in-process (HTTP and gRPC) on this test's two shards; settings that point ingest's clients at it."""
    shutdown = trio.Event()
    grpc_port = free_port()
    own = settings.replace(webhook_mode="grpc", api_port=0, api_grpc_port=grpc_port,
                           api_grpc_target=f"127.0.0.1:{grpc_port}")
    async with trio_asyncio.open_loop() as loop, trio.open_nursery() as nursery:
        urls = await nursery.start(serve_api, own, loop, shutdown)
        async with httpx.AsyncClient(base_url=urls[0], headers={"Authorization": f"Bearer {TEST_API_TOKEN}"},
                                     timeout=30) as public:
            yield own.replace(api_base_url=urls[0]), public, loop
        shutdown.set()


async def _grpc_client(settings: Settings, loop: trio_asyncio.TrioEventLoop) -> GrpcApiClient:
    return GrpcApiClient(settings, loop)


async def send_batch(api: tuple[Settings, httpx.AsyncClient, trio_asyncio.TrioEventLoop], transport: str,
                     updates: list[InboundUpdate]) -> list[ItemResult]:
    settings, _, loop = api
    items = [BatchItem(update) for update in updates]
    if transport == "grpc":
        client: HttpApiClient | GrpcApiClient = await loop.run_aio_coroutine(_grpc_client(settings, loop))
    else:
        client = HttpApiClient(settings, encoding=transport)
    try:
        return await client.send_updates(items)
    finally:
        await client.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_outcome_in_one_batch(api, transport: str) -> None:  # noqa: ANN001 - the fixture's tuple
    _, public, _ = api
    with trio.fail_after(60):
        await create_order(public, "o1", "u1")
        await create_order(public, "o2", "u2")
        stored = order_update("o2", "u2", "paid", at(1))
        assert (await send(public, stored)).status_code == 200
        batch = [
            order_update("o1", "u1", "paid", at(10)),  # applied
            order_update("o1", "u1", "authorized", at(5)),  # stale: older than the one before it
            stored,  # duplicate
            order_update("o1", "u1", "pending", at(20)),  # invalid transition (paid → pending)
            order_update("o1", "intruder", "refunded", at(30)),  # user mismatch (the order is on u1's shard)
            order_update("nope", "u1", "paid", at(30)),  # not found
            order_update("o1", "u1", "refunded", at(40), currency="eur"),  # invalid: same rules as JSON
            dispute_update("d1", "o1", "u1", "opened", at(50)),  # applied
            dispute_update("d2", "o1", "u1", "won", at(50)),  # not found: a dispute starts with opened
        ]
        results = await send_batch(api, transport, batch)
        assert [r.status for r in results] == [200, 200, 409, 422, 422, 404, 400, 200, 404]
        answers = [answer_for(r) for r in results]
        assert answers[:3] == [Outcome.APPLIED, Outcome.STALE, Outcome.DUPLICATE] and answers[7] is Outcome.APPLIED
        assert [type(a) for a in answers[3:7]] == [InvalidTransition, UserMismatch, NotFound, InvalidInput]
        assert "currency" in results[6].detail and results[4].title == "User mismatch"
        assert [e["field"] for e in answers[6].errors] == ["currency"]  # the webhook's 400 names the field
        order = (await public.get("/orders/o1")).json()
        assert order["status"] == "paid"
        assert [(e["status"], e["applied"]) for e in order["events"]] == [("authorized", False), ("paid", True)]
        assert (await public.get("/disputes/d1")).json()["status"] == "opened"
        assert (await public.get("/disputes/d2")).status_code == 404


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_batch_sent_again_is_answered_as_duplicates_and_applied_once(api, transport: str) -> None:  # noqa: ANN001
    """What ingest's retry after a lost answer does: the api is idempotent on provider event ids."""
    _, public, _ = api
    with trio.fail_after(60):
        users = [f"u{n}" for n in range(6)]  # spread over both shards
        for user in users:
            await create_order(public, f"o-{user}", user)
        batch = [order_update(f"o-{user}", user, "authorized", at(1)) for user in users]
        batch += [order_update(f"o-{user}", user, "paid", at(2)) for user in users]
        first = await send_batch(api, transport, batch)
        assert {(r.status, r.outcome) for r in first} == {(200, "applied")}
        again = await send_batch(api, transport, batch)
        assert {r.status for r in again} == {409} and {answer_for(r) for r in again} == {Outcome.DUPLICATE}
        for user in users:
            order = (await public.get(f"/orders/o-{user}")).json()
            assert order["status"] == "paid" and len(order["events"]) == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_dispute_named_by_its_payment_finds_its_order_through_the_link(api, transport: str) -> None:  # noqa: ANN001
    """Stripe in the sync modes: the payment event carries ``provider_payment_id`` (in Protobuf too), the
    api links it once applied, and a ``payment_dispute`` item is resolved through that link before it is
    applied; a payment without a link is a 404 item (Stripe retries), never applied to a guessed order."""
    _, public, _ = api
    with trio.fail_after(60):
        await create_order(public, "o7", "u7")
        early = await send_batch(api, transport, [payment_dispute_update("d7", "pi_7", "opened", at(5))])
        assert [(r.status, r.problem_type.rsplit(":", 1)[-1]) for r in early] == [(404, "not-found")]
        paid = await send_batch(api, transport, [order_update("o7", "u7", "paid", at(1), provider_payment_id="pi_7")])
        assert [(r.status, r.outcome) for r in paid] == [(200, "applied")]
        opened = payment_dispute_update("d7", "pi_7", "opened", at(5))
        results = await send_batch(api, transport, [
            opened,
            payment_dispute_update("d8", "pi_nobody", "opened", at(5)),  # no payment event: not found
            order_update("o7", "u7", "refunded", at(9)),  # a neighbour of the same user, applied as usual
        ])
        assert [r.status for r in results] == [200, 404, 200]
        assert [r.status for r in await send_batch(api, transport, [opened])] == [409]  # Stripe's retry
        dispute = (await public.get("/disputes/d7")).json()
        assert (dispute["order_id"], dispute["status"], len(dispute["events"])) == ("o7", "opened", 1)
        assert (await public.get("/disputes/d8")).status_code == 404


async def test_refused_batches_change_nothing(api) -> None:  # noqa: ANN001
    settings, public, _ = api
    with trio.fail_after(60):
        await create_order(public, "o3", "u3")
        one = encode_json_batch([BatchItem(order_update("o3", "u3", "paid", at(1)))])
        json_headers = {**INTERNAL, "Content-Type": "application/json"}
        post = public.post
        assert (await post(URL, content=one, headers={"Content-Type": "application/json",
                                                      "Authorization": "Bearer wrong-token"})).status_code == 401
        assert (await post(URL, content=one, headers={**INTERNAL, "Content-Type": "text/plain"})).status_code == 415
        for body in (b"{nope", b'{"order": {}}', b"[]"):
            refused = await post(URL, content=body, headers=json_headers)
            assert refused.status_code == 400 and refused.headers["content-type"] == "application/problem+json"
        too_many = b"[" + b",".join([one[1:-1]] * (settings.api_batch_max + 1)) + b"]"
        refused = await post(URL, content=too_many, headers=json_headers)
        assert refused.status_code == 413 and refused.json()["type"].endswith(":payload-too-large")
        garbage = await post(URL, content=b"\xff\x00garbage", headers={**INTERNAL,
                                                                        "Content-Type": "application/x-protobuf"})
        assert garbage.status_code == 400
        # an item that is neither an order nor a dispute is a 400 item; its neighbour is applied
        mixed = await post(URL, content=b'[{"order": {"amount": 1.5}}, {}, ' + one[1:], headers=json_headers)
        results = msgspec.json.decode(mixed.content)["results"]
        assert [r["status"] for r in results] == [400, 400, 200] and results[0]["type"].endswith(":invalid-input")
        assert [e["status"] for e in (await public.get("/orders/o3")).json()["events"]] == ["paid"]


async def test_too_many_updates_over_grpc_are_refused_whole(api) -> None:  # noqa: ANN001
    settings, public, _ = api
    with trio.fail_after(60):
        await create_order(public, "o5", "u5")
        batch = [order_update("o5", "u5", "paid", at(1))] * (settings.api_batch_max + 1)
        with pytest.raises(BadGateway, match="RESOURCE_EXHAUSTED"):
            await send_batch(api, "grpc", batch)
        assert (await public.get("/orders/o5")).json()["events"] == []
