"""Ingest's gRPC client of the api: the same ``ApiClient`` interface as HTTP.

grpcio's asyncio channel lives on the process's trio-asyncio loop; each call crosses
once. Status codes are read back with the same meaning as the HTTP statuses:
ALREADY_EXISTS is a duplicate, NOT_FOUND / FAILED_PRECONDITION / INVALID_ARGUMENT are
answers about the event, UNAVAILABLE and DEADLINE_EXCEEDED are transient.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import grpc
import trio_asyncio

from shared.domain import Outcome
from shared.errors import (
    PROBLEM_TYPE_METADATA,
    BadGateway,
    GatewayTimeout,
    Unavailable,
    error_for_grpc_status,
    error_for_problem_type,
    rejects_the_event,
)
from shared.messages import DisputeUpdate, OrderUpdate, Update
from shared.proto import updates_pb2, updates_pb2_grpc
from shared.protobuf_codec import to_protobuf
from shared.retry_policy import TransientFailure
from shared.settings import Settings
from shared.tracing import current_traceparent
from shared.update_batch import BatchItem, ItemResult, protobuf_batch, read_protobuf_results

# Reconnect within 2 s of the api coming back (gRPC's default backoff grows to 120 s);
# the circuit breaker, not the channel, decides how hard a failing api is tried.
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 2000), ("grpc.enable_retries", 0)]
_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
              grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED}


class GrpcApiClient:
    def __init__(self, settings: Settings, loop: trio_asyncio.TrioEventLoop) -> None:
        self._loop = loop
        self._timeout = settings.api_timeout_seconds
        token = settings.internal_token.reveal() if settings.internal_token else ""
        self._metadata: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),)
        self._channel = grpc.aio.insecure_channel(settings.api_grpc_target, options=CHANNEL_OPTIONS)
        self._stub = updates_pb2_grpc.UpdatesServiceStub(self._channel)  # type: ignore[no-untyped-call]  # generated

    async def send_order_update(self, update: OrderUpdate) -> Outcome:
        return await self._send(self._stub.SendOrderUpdate, update)

    async def send_dispute_update(self, update: DisputeUpdate) -> Outcome:
        return await self._send(self._stub.SendDisputeUpdate, update)

    async def send_updates(self, items: Sequence[BatchItem]) -> list[ItemResult]:
        """One attempt of ``SendUpdates`` (the forwarder's call): one result per item."""
        try:
            result: updates_pb2.BatchResult = await self._loop.run_aio_coroutine(
                self._stub.SendUpdates(protobuf_batch(items), timeout=self._timeout, metadata=self._metadata))
        except grpc.aio.AioRpcError as error:
            code, detail = error.code(), error.details() or ""
            if code is grpc.StatusCode.DEADLINE_EXCEEDED:
                raise TransientFailure(GatewayTimeout(f"the api did not answer in time: {detail}")) from None
            ours = error_for_problem_type(_problem_type(error))  # the api's own word, e.g. too many updates
            if code in _TRANSIENT and (ours is None or issubclass(ours, Unavailable)):
                failing = BadGateway(f"the api is unreachable or failing ({code.name}): {detail}")
                raise TransientFailure(failing) from None
            raise BadGateway(f"the api refused the batch: {code.name} {detail}") from None
        return read_protobuf_results(result)

    async def ping(self) -> None:
        """Readiness: the channel connects within 2 s."""
        await self._loop.run_aio_coroutine(asyncio.wait_for(self._channel.channel_ready(), 2.0))

    async def aclose(self) -> None:
        await self._loop.run_aio_coroutine(self._channel.close())

    async def _send(self, method: Any, update: Update) -> Outcome:  # a grpc unary-unary callable (untyped)
        metadata: tuple[tuple[str, str], ...] = (*self._metadata, ("x-correlation-id", update.correlation_id))
        if traceparent := current_traceparent.get():
            metadata = (*metadata, ("traceparent", traceparent))
        try:
            result: updates_pb2.UpdateResult = await self._loop.run_aio_coroutine(
                method(to_protobuf(update), timeout=self._timeout, metadata=metadata))
        except grpc.aio.AioRpcError as error:
            return self._outcome(error)
        return Outcome(result.outcome)

    def _outcome(self, error: grpc.aio.AioRpcError) -> Outcome:
        code, detail = error.code(), error.details() or ""
        if code is grpc.StatusCode.ALREADY_EXISTS:
            return Outcome.DUPLICATE
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            raise TransientFailure(GatewayTimeout(f"the api did not answer in time: {detail}"))
        if code in _TRANSIENT:
            raise TransientFailure(BadGateway(f"the api is unreachable or failing ({code.name}): {detail}"))
        # the one error table: by the problem type the api sends along, else by the status alone
        rejection = error_for_problem_type(_problem_type(error)) or error_for_grpc_status(code.name)
        if rejection is not None and rejects_the_event(rejection):
            raise rejection(detail)
        raise BadGateway(f"unexpected answer from the api: {code.name} {detail}")


def _problem_type(error: grpc.aio.AioRpcError) -> str | None:
    """The problem type the api put in the trailing metadata (it tells 422s apart), if any."""
    for key, value in error.trailing_metadata() or ():
        if key == PROBLEM_TYPE_METADATA and isinstance(value, str):
            return value
    return None
