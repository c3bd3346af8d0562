"""The api's gRPC ``UpdatesService``, on grpcio's asyncio server under the process's trio-asyncio loop.

Why grpcio: maintained upstream, no version pins against hypercorn (purerpc needs h2 3.x and
swallows trio cancellation; FIELD-NOTES). Its servicer methods run on the asyncio side and
hand each update to the same trio ``UpdateApplier`` as HTTP (through ``trio_as_future``), so
both transports share the writer actors and the outcome → status table of ``shared.errors``.
"""

from __future__ import annotations

import grpc
import trio
import trio_asyncio
from google.protobuf.message import Message

from api.updates import UpdateApplier
from shared.auth import check_bearer
from shared.errors import WebhookError, mapping_for
from shared.logs import get_logger
from shared.messages import DisputeUpdate, OrderUpdate, Update
from shared.proto import updates_pb2, updates_pb2_grpc
from shared.protobuf_codec import from_protobuf
from shared.settings import ConfigError, Secret, Settings
from shared.tracing import trace_id

log = get_logger(__name__)


class UpdatesServicer(updates_pb2_grpc.UpdatesServiceServicer):
    def __init__(self, loop: trio_asyncio.TrioEventLoop, applier: UpdateApplier, tokens: tuple[Secret, ...]) -> None:
        self._loop = loop
        self._applier = applier
        self._tokens = tokens

    async def SendOrderUpdate(self, request: Message, context: grpc.aio.ServicerContext) -> updates_pb2.UpdateResult:  # noqa: N802
        return await self._handle(request, OrderUpdate, context)

    async def SendDisputeUpdate(self, request: Message, context: grpc.aio.ServicerContext) -> updates_pb2.UpdateResult:  # noqa: N802
        return await self._handle(request, DisputeUpdate, context)

    async def _handle(self, request: Message, schema: type[Update],
                      context: grpc.aio.ServicerContext) -> updates_pb2.UpdateResult:
        try:
            metadata = dict(context.invocation_metadata() or ())
            check_bearer(metadata.get("authorization"), self._tokens)
            update = from_protobuf(request, schema)
            outcome = await self._loop.trio_as_future(self._applier.apply, update)
            log.debug("update applied", correlation_id=update.correlation_id, outcome=outcome.value,
                      event_id=update.event_id, trace_id=trace_id(metadata.get("traceparent")), transport="grpc")
            return updates_pb2.UpdateResult(outcome=outcome.value)
        except WebhookError as error:
            await context.abort(grpc.StatusCode[mapping_for(error).grpc_status], error.detail)
        raise AssertionError("unreachable")  # pragma: no cover - abort raises


async def serve_grpc(settings: Settings, loop: trio_asyncio.TrioEventLoop, applier: UpdateApplier,
                     shutdown: trio.Event, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``UpdatesService`` until ``shutdown``; in-flight calls get the grace period."""
    tokens = (settings.internal_token,) if settings.internal_token else ()
    server, port = await loop.run_aio_coroutine(
        _start(loop, applier, tokens, settings.bind_host, settings.api_grpc_port))
    try:
        task_status.started(port)
        await shutdown.wait()
    finally:
        with trio.CancelScope(shield=True):
            await loop.run_aio_coroutine(server.stop(settings.shutdown_grace_seconds))


async def _start(loop: trio_asyncio.TrioEventLoop, applier: UpdateApplier, tokens: tuple[Secret, ...], host: str,
                 port: int) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    updates_pb2_grpc.add_UpdatesServiceServicer_to_server(UpdatesServicer(loop, applier, tokens), server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as exc:  # grpcio says only "Failed to bind" (its core logs why): a taken port, mostly
        raise ConfigError(f"API_GRPC_PORT={port} could not be bound on {host} "
                          "(in use? set another port, or 0 for a free one)") from exc
    await server.start()
    return server, bound
