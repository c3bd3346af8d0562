"""Every outcome of UpdatesService through gRPC, against the api served in-process on real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import httpx
import pytest
import trio
import trio_asyncio

from api.service import serve_api
from ingest.grpc_client import GrpcApiClient
from shared.domain import Outcome
from shared.errors import BadGateway, InvalidInput, InvalidTransition, NotFound, UserMismatch
from shared.protobuf_codec import to_protobuf
from shared.settings import Secret, Settings
from tests.api.updates import at, create_order, dispute_update, order_update
from tests.conftest import TEST_API_TOKEN, TEST_INTERNAL_TOKEN
from webhooks.embedded import free_port


@dataclass
class GrpcApi:
    client: GrpcApiClient
    public: httpx.AsyncClient
    settings: Settings
    loop: trio_asyncio.TrioEventLoop


@pytest.fixture
async def grpc_api(settings: Settings) -> AsyncIterator[GrpcApi]:
    shutdown = trio.Event()
    port = free_port()
    own = settings.replace(webhook_mode="grpc", api_port=0, api_grpc_port=port,
                           api_grpc_target=f"127.0.0.1:{port}")
    async with trio_asyncio.open_loop() as loop, trio.open_nursery() as nursery:
        urls = await nursery.start(serve_api, own, loop, shutdown)
        client = await loop.run_aio_coroutine(_client(own, loop))
        async with httpx.AsyncClient(base_url=urls[0], headers={"Authorization": f"Bearer {TEST_API_TOKEN}"},
                                     timeout=30) as public:
            yield GrpcApi(client, public, own, loop)
        await client.aclose()
        shutdown.set()


async def _client(settings: Settings, loop: trio_asyncio.TrioEventLoop) -> GrpcApiClient:
    return GrpcApiClient(settings, loop)


async def test_every_outcome_through_grpc(grpc_api: GrpcApi) -> None:
    client = grpc_api.client
    with trio.fail_after(30):
        await create_order(grpc_api.public, "o1", "u1")
        paid = order_update("o1", "u1", "paid", at(10))
        assert await client.send_order_update(paid) is Outcome.APPLIED
        assert await client.send_order_update(paid) is Outcome.DUPLICATE  # ALREADY_EXISTS
        assert await client.send_order_update(order_update("o1", "u1", "authorized", at(5))) is Outcome.STALE
        with pytest.raises(InvalidTransition):  # FAILED_PRECONDITION
            await client.send_order_update(order_update("o1", "u1", "pending", at(20)))
        with pytest.raises(UserMismatch, match="does not belong"):  # FAILED_PRECONDITION + its problem type
            await client.send_order_update(order_update("o1", "intruder", "refunded", at(30)))
        with pytest.raises(NotFound):
            await client.send_order_update(order_update("nope", "u1", "paid", at(30)))
        with pytest.raises(InvalidInput, match="currency"):  # INVALID_ARGUMENT: same rules as JSON
            await client.send_order_update(order_update("o1", "u1", "refunded", at(40), currency="eur"))
        assert await client.send_dispute_update(dispute_update("d1", "o1", "u1", "opened", at(50))) is Outcome.APPLIED
        with pytest.raises(NotFound):
            await client.send_dispute_update(dispute_update("d2", "o1", "u1", "won", at(50)))
        events = (await grpc_api.public.get("/orders/o1")).json()["events"]
        assert [(e["status"], e["applied"]) for e in events] == [("authorized", False), ("paid", True)]


async def test_a_wrong_internal_token_is_refused(grpc_api: GrpcApi) -> None:
    wrong = grpc_api.settings.replace(internal_token=Secret("not-the-token"))
    client = await grpc_api.loop.run_aio_coroutine(_client(wrong, grpc_api.loop))
    try:
        with trio.fail_after(30), pytest.raises(BadGateway, match="UNAUTHENTICATED"):
            await client.send_order_update(order_update("o1", "u1", "paid", at(1)))
    finally:
        await client.aclose()


async def _raw_call(api: GrpcApi, method: str, request: bytes,
                    metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
    """A call with ``request`` sent as it is (a generic method with no serializers), as any client may."""
    async def call() -> grpc.StatusCode:
        async with grpc.aio.insecure_channel(api.settings.api_grpc_target) as channel:
            try:
                await channel.unary_unary(f"/webhooks.v1.UpdatesService/{method}")(request, metadata=metadata,
                                                                                   timeout=10)
            except grpc.aio.AioRpcError as error:
                return error.code()
            return grpc.StatusCode.OK
    return await api.loop.run_aio_coroutine(call())


TOKEN = (("authorization", f"Bearer {TEST_INTERNAL_TOKEN}"),)


@pytest.mark.parametrize("method", ["SendOrderUpdate", "SendDisputeUpdate"])
async def test_bytes_that_are_no_message_are_invalid_argument(grpc_api: GrpcApi, method: str) -> None:
    """grpcio's own deserializer answered UNKNOWN (its DecodeError escaped), before the token was checked."""
    with trio.fail_after(30):
        for garbage in (b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x0a\x02\xff\xfe"):  # corrupt, truncated, bad UTF-8
            assert await _raw_call(grpc_api, method, garbage, TOKEN) is grpc.StatusCode.INVALID_ARGUMENT
            wrong = (("authorization", "Bearer not-the-token"),)
            assert await _raw_call(grpc_api, method, garbage, wrong) is grpc.StatusCode.UNAUTHENTICATED


async def test_a_repeated_authorization_metadata_is_unauthenticated(grpc_api: GrpcApi) -> None:
    """The servicer's metadata dict kept the last copy (here the valid one): the update was applied."""
    with trio.fail_after(30):
        await create_order(grpc_api.public, "o1", "u1")
        update = to_protobuf(order_update("o1", "u1", "paid", at(10))).SerializeToString()
        twice = (("authorization", "Bearer not-the-token"), *TOKEN)
        assert await _raw_call(grpc_api, "SendOrderUpdate", update, twice) is grpc.StatusCode.UNAUTHENTICATED
        assert (await grpc_api.public.get("/orders/o1")).json()["status"] == "created"
        assert await _raw_call(grpc_api, "SendOrderUpdate", update, TOKEN) is grpc.StatusCode.OK
