"""Ingest's client of the api: one interface, an HTTP implementation, and the resilience around it.

``ApiClient`` is the single-update interface: send an order update, send a dispute
update, close (the sync processor itself goes through the forwarder's batch calls,
``send_updates``, which also carry disputes named by their payment). ``HttpApiClient``
makes one attempt over httpx (JSON or Protobuf) and classifies the answer; ``ResilientApiClient`` wraps any ApiClient
with the retry policy and the circuit-breaker actor. The gRPC client implements the
same interface and gets the same wrapper.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import httpx
import trio
from google.protobuf.message import DecodeError

from ingest.breaker_actor import CircuitBreakerActor, result_of
from ingest.circuit_breaker import Result
from ingest.metrics import API_CALLS
from shared.domain import Outcome
from shared.errors import BadGateway, GatewayTimeout, WebhookError, error_for_problem_type, rejects_the_event
from shared.messages import DECODE_ERRORS, DisputeUpdate, OrderUpdate, Update, encode_json
from shared.proto import updates_pb2
from shared.protobuf_codec import to_protobuf
from shared.retry_policy import TransientFailure, retrying
from shared.settings import Settings
from shared.tracing import current_traceparent
from shared.update_batch import (
    BatchItem,
    ItemResult,
    decode_json_results,
    encode_json_batch,
    protobuf_batch,
    read_protobuf_results,
)

U = TypeVar("U", OrderUpdate, DisputeUpdate)


class ApiClient(Protocol):
    async def send_order_update(self, update: OrderUpdate) -> Outcome: ...
    async def send_dispute_update(self, update: DisputeUpdate) -> Outcome: ...
    async def aclose(self) -> None: ...


class HttpApiClient:
    def __init__(self, settings: Settings, *, encoding: str = "json",
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        token = settings.internal_token.reveal() if settings.internal_token else ""
        self._protobuf = encoding == "protobuf"
        content_type = "application/x-protobuf" if self._protobuf else "application/json"
        self._http = httpx.AsyncClient(
            base_url=settings.api_base_url, transport=transport, timeout=settings.api_timeout_seconds,
            headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
            # httpcore scans every pooled connection for each request: keep the pool small
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16))

    async def send_order_update(self, update: OrderUpdate) -> Outcome:
        return await self._send("/internal/updates/orders", update)

    async def send_dispute_update(self, update: DisputeUpdate) -> Outcome:
        return await self._send("/internal/updates/disputes", update)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send_updates(self, items: Sequence[BatchItem]) -> list[ItemResult]:
        """One attempt of ``POST /internal/updates/batch`` (the forwarder's call): one result per item."""
        body = protobuf_batch(items).SerializeToString() if self._protobuf else encode_json_batch(items)
        response = await self._post("/internal/updates/batch", body, {})
        if response.status_code >= 500:
            raise TransientFailure(BadGateway(f"the api answered {response.status_code}"))
        if response.status_code != 200:
            raise BadGateway(f"the api refused the batch: {response.status_code} {_problem(response).get('type', '')}")
        try:
            if self._protobuf:
                return read_protobuf_results(updates_pb2.BatchResult.FromString(response.content))
            return decode_json_results(response.content)
        except (*DECODE_ERRORS, DecodeError) as exc:  # unreadable: not a 500
            raise BadGateway(f"unreadable answer from the api ({type(exc).__name__})") from exc

    async def _send(self, path: str, update: Update) -> Outcome:
        body = to_protobuf(update).SerializeToString() if self._protobuf else encode_json(update)
        headers = {"X-Correlation-ID": update.correlation_id}
        if traceparent := current_traceparent.get():
            headers["traceparent"] = traceparent
        return self._outcome(await self._post(path, body, headers))

    async def _post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        try:
            return await self._http.post(path, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise TransientFailure(GatewayTimeout(f"the api did not answer in time ({type(exc).__name__})")) from exc
        except httpx.TransportError as exc:
            raise TransientFailure(BadGateway(f"the api is unreachable ({type(exc).__name__})")) from exc

    def _outcome(self, response: httpx.Response) -> Outcome:
        if response.status_code == 200:
            try:
                if self._protobuf:
                    return Outcome(updates_pb2.UpdateResult.FromString(response.content).outcome)
                return Outcome(response.json()["outcome"])
            except (ValueError, KeyError, TypeError, DecodeError) as exc:  # a 200 we cannot read: not a 500
                raise BadGateway(f"unreadable answer from the api ({type(exc).__name__})") from exc
        if response.status_code == 409:
            return Outcome.DUPLICATE
        if response.status_code >= 500:
            raise TransientFailure(BadGateway(f"the api answered {response.status_code}"))
        problem = _problem(response)  # read back by its type, through the one error table
        rejection = error_for_problem_type(problem.get("type"))
        if rejection is None or not rejects_the_event(rejection):
            raise BadGateway(f"unexpected answer from the api: {response.status_code} {problem.get('type', '')}")
        raise rejection(str(problem.get("detail", "")), errors=problem.get("errors"))


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# What tells the breaker the api is up although the call raised: an answer about the event
# itself (404, 422, 400, or an answer this client does not know, all WebhookErrors; a 409 is
# the DUPLICATE outcome). TransientFailure (5xx, unreachable, per-attempt timeout) and anything
# unexpected count as failures; a cancelled attempt releases its permit and counts neither way.
BREAKER_ANSWERS: tuple[type[Exception], ...] = (WebhookError,)
_ATTEMPT_RESULTS = {Result.SUCCESS: "ok", Result.FAILURE: "failed", Result.RELEASED: "cancelled"}


@contextmanager
def counted_attempt(answers: tuple[type[Exception], ...] = BREAKER_ANSWERS) -> Iterator[None]:
    """``ingest_api_calls_total`` by how the attempt went, in the breaker's terms (``answers``:
    the exceptions that are the api's answer, not its failure)."""
    try:
        yield
    except BaseException as exc:
        API_CALLS.labels(_ATTEMPT_RESULTS[result_of(exc, answers)]).inc()
        raise
    API_CALLS.labels("ok").inc()


class ResilientApiClient:
    """Any ApiClient behind the retry policy, a per-attempt deadline and the circuit breaker."""

    def __init__(self, inner: ApiClient, breaker: CircuitBreakerActor, settings: Settings,
                 rng: random.Random | None = None) -> None:
        self._inner = inner
        self._breaker = breaker
        self._settings = settings
        self._rng = rng

    async def send_order_update(self, update: OrderUpdate) -> Outcome:
        return await self._call(self._inner.send_order_update, update)

    async def send_dispute_update(self, update: DisputeUpdate) -> Outcome:
        return await self._call(self._inner.send_dispute_update, update)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def _call(self, send: Callable[[U], Awaitable[Outcome]], update: U) -> Outcome:
        try:
            async for attempt in retrying(self._settings, self._rng):
                with attempt:
                    return await self._attempt(send, update)
        except TransientFailure as exc:
            raise exc.final from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, send: Callable[[U], Awaitable[Outcome]], update: U) -> Outcome:
        async with self._breaker.permit(answers=BREAKER_ANSWERS):
            with counted_attempt():
                return await self._send_in_time(send, update)

    async def _send_in_time(self, send: Callable[[U], Awaitable[Outcome]], update: U) -> Outcome:
        try:
            with trio.fail_after(self._settings.api_timeout_seconds):
                return await send(update)
        except trio.TooSlowError:
            raise TransientFailure(GatewayTimeout("the api did not answer in time")) from None
