"""The api's gRPC ``UpdatesService``, on grpcio's asyncio server under the process's trio-asyncio loop.

Why grpcio: maintained upstream, no version pins against hypercorn (purerpc needs h2 3.x and
swallows trio cancellation; FIELD-NOTES). Its servicer methods run on the asyncio side and
hand each update to the same trio ``UpdateApplier`` as HTTP (through ``trio_as_future``), so
both transports share the writer actors and the outcome → status table of ``shared.errors``.

The methods take the request's raw bytes and decode them after the token is checked, like the
HTTP endpoint: grpcio's own deserializer answered a body that is not the message with UNKNOWN
(its ``DecodeError`` escaped), and before any token check. Undecodable is INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
import trio
import trio_asyncio

from api.batch_endpoint import apply_items
from api.updates import UpdateApplier
from shared.auth import check_bearer
from shared.errors import PROBLEM_TYPE_METADATA, WebhookError, mapping_for
from shared.logs import get_logger
from shared.messages import DisputeUpdate, OrderUpdate, Update
from shared.proto import updates_pb2
from shared.protobuf_codec import decode_protobuf
from shared.secret import Secret
from shared.settings import ConfigError, Settings
from shared.tracing import trace_id
from shared.update_batch import decode_protobuf_batch, protobuf_results

log = get_logger(__name__)


SERVICE = updates_pb2.DESCRIPTOR.services_by_name["UpdatesService"].full_name


class UpdatesServicer:
    def __init__(self, loop: trio_asyncio.TrioEventLoop, applier: UpdateApplier, tokens: tuple[Secret, ...],
                 max_batch_items: int = 128) -> None:
        self._loop = loop
        self._applier = applier
        self._tokens = tokens
        self._max_batch_items = max_batch_items

    def handlers(self) -> dict[str, grpc.RpcMethodHandler]:
        """``UpdatesService``'s methods, taking raw bytes (no request deserializer)."""
        serialize = updates_pb2.UpdateResult.SerializeToString
        return {
            "SendOrderUpdate": grpc.unary_unary_rpc_method_handler(
                self.send_order_update, response_serializer=serialize),
            "SendDisputeUpdate": grpc.unary_unary_rpc_method_handler(
                self.send_dispute_update, response_serializer=serialize),
            "SendUpdates": grpc.unary_unary_rpc_method_handler(
                self.send_updates, response_serializer=updates_pb2.BatchResult.SerializeToString),
        }

    async def send_order_update(self, request: bytes, context: grpc.aio.ServicerContext) -> updates_pb2.UpdateResult:
        return await self._handle(request, OrderUpdate, context)

    async def send_dispute_update(self, request: bytes,
                                  context: grpc.aio.ServicerContext) -> updates_pb2.UpdateResult:
        return await self._handle(request, DisputeUpdate, context)

    async def send_updates(self, request: bytes, context: grpc.aio.ServicerContext) -> updates_pb2.BatchResult:
        """A batch: each item answered in ``BatchResult`` with its own status; the call itself fails
        only for the batch as a whole (token, undecodable: INVALID_ARGUMENT, too many: RESOURCE_EXHAUSTED)."""
        try:
            check_bearer(_values(tuple(context.invocation_metadata() or ()), "authorization"), self._tokens)
            items = decode_protobuf_batch(request, self._max_batch_items)
            return protobuf_results(await self._loop.trio_as_future(apply_items, self._applier, items, "grpc"))
        except WebhookError as error:
            await _abort(context, error)
        except Exception:  # noqa: BLE001 - the last line of defence, as HTTP's 500: logged, no internals sent
            log.exception("unexpected error in UpdatesService", method="SendUpdates")
            await context.abort(grpc.StatusCode.INTERNAL, "unexpected error; it was logged")
        raise AssertionError("unreachable")  # pragma: no cover - abort raises

    async def _handle(self, request: bytes, schema: type[Update],
                      context: grpc.aio.ServicerContext) -> updates_pb2.UpdateResult:
        try:
            metadata = tuple(context.invocation_metadata() or ())
            check_bearer(_values(metadata, "authorization"), self._tokens)
            update = decode_protobuf(request, schema)
            outcome = await self._loop.trio_as_future(self._applier.apply, update)
            traceparent = next(iter(_values(metadata, "traceparent")), None)
            log.debug("update applied", correlation_id=update.correlation_id, outcome=outcome.value,
                      event_id=update.event_id, trace_id=trace_id(traceparent), transport="grpc")
            return updates_pb2.UpdateResult(outcome=outcome.value)
        except WebhookError as error:
            await _abort(context, error)
        except Exception:  # noqa: BLE001 - the last line of defence, as HTTP's 500: logged, no internals sent
            log.exception("unexpected error in UpdatesService", schema=schema.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, "unexpected error; it was logged")
        raise AssertionError("unreachable")  # pragma: no cover - abort raises


async def _abort(context: grpc.aio.ServicerContext, error: WebhookError) -> None:
    mapping = mapping_for(error)  # the status, and the problem type that tells 422s apart
    await context.abort(grpc.StatusCode[mapping.grpc_status], error.detail,
                        trailing_metadata=((PROBLEM_TYPE_METADATA, mapping.problem_type),))


def _values(metadata: Sequence[tuple[str, str | bytes]], key: str) -> list[str]:
    """Every text value of ``key`` (binary ``-bin`` keys never match a text key)."""
    return [value for name, value in metadata if name == key and isinstance(value, str)]


async def serve_grpc(settings: Settings, loop: trio_asyncio.TrioEventLoop, applier: UpdateApplier,
                     shutdown: trio.Event, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``UpdatesService`` until ``shutdown``; in-flight calls get the grace period."""
    tokens = (settings.internal_token,) if settings.internal_token else ()
    server, port = await loop.run_aio_coroutine(
        _start(UpdatesServicer(loop, applier, tokens, settings.api_batch_max), settings.bind_host,
               settings.api_grpc_port))
    try:
        task_status.started(port)
        await shutdown.wait()
    finally:
        with trio.CancelScope(shield=True):
            await loop.run_aio_coroutine(server.stop(settings.shutdown_grace_seconds))


async def _start(servicer: UpdatesServicer, host: str, port: int) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    handlers = servicer.handlers()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as exc:  # grpcio says only "Failed to bind" (its core logs why): a taken port, mostly
        raise ConfigError(f"API_GRPC_PORT={port} could not be bound on {host} "
                          "(in use? set another port, or 0 for a free one)") from exc
    await server.start()
    return server, bound
