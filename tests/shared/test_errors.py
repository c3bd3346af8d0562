"""The one error table: every error has one problem type, and ingest's clients read answers back through it."""

from __future__ import annotations

import json

import httpx
import pytest

from ingest.api_client import HttpApiClient
from shared.errors import (
    ERROR_MAP,
    BadGateway,
    CircuitOpen,
    InvalidInput,
    InvalidTransition,
    NotFound,
    UserMismatch,
    WebhookError,
    error_for_grpc_status,
    error_for_problem_type,
)
from shared.problems import problem_for
from shared.settings import Secret, Settings
from tests.api.updates import at, order_update


def test_every_error_has_its_own_problem_type_and_renders_with_it() -> None:
    types = [mapping.problem_type for mapping in ERROR_MAP.values()]
    assert len(types) == len(set(types))
    for error, mapping in ERROR_MAP.items():
        body, status, _ = problem_for(error("why"))
        problem = json.loads(body)
        assert (problem["type"], problem["status"], status) == (mapping.problem_type, mapping.http_status,
                                                                 mapping.http_status)
        assert error_for_problem_type(problem["type"]) is error


@pytest.mark.parametrize("api_called", [False, True])
def test_a_circuit_open_problem_says_whether_the_api_was_called_and_when_to_retry(api_called: bool) -> None:
    body, status, headers = problem_for(CircuitOpen("not now", retry_after_seconds=7, api_called=api_called))
    problem = json.loads(body)
    assert (status, headers["Retry-After"], problem["api_called"], problem["detail"]) == (503, "7", api_called,
                                                                                           "not now")


def test_an_extension_member_never_replaces_a_member_of_rfc_9457() -> None:
    from shared.problems import problem_body

    body = json.loads(problem_body(503, "t", "d", None, "urn:x", {"type": "evil", "status": 200, "errors": 1,
                                                                    "api_called": True}))
    assert body == {"type": "urn:x", "title": "t", "status": 503, "detail": "d", "api_called": True}


@pytest.mark.parametrize(("name", "error"), [("NOT_FOUND", NotFound), ("FAILED_PRECONDITION", InvalidTransition),
                                             ("INVALID_ARGUMENT", InvalidInput), ("OK", None)])
def test_grpc_status_reads_back_through_the_table(name: str, error: type[WebhookError] | None) -> None:
    assert error_for_grpc_status(name) is error


def _client(status: int, problem: dict[str, object]) -> HttpApiClient:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=problem, headers={"content-type": "application/problem+json"})

    settings = Settings(internal_token=Secret("internal-token-0123"), api_base_url="http://api")
    return HttpApiClient(settings, transport=httpx.MockTransport(answer))


@pytest.mark.parametrize(("error", "status"), [(NotFound, 404), (InvalidTransition, 422), (UserMismatch, 422),
                                               (InvalidInput, 400)])
async def test_the_http_client_decodes_an_answer_by_its_type_not_its_title(error: type[WebhookError],
                                                                           status: int) -> None:
    problem = {"type": ERROR_MAP[error].problem_type, "title": "any wording at all", "status": status,
               "detail": "the api's words"}
    client = _client(status, problem)
    with pytest.raises(error, match="the api's words"):
        await client.send_order_update(order_update("o", "u", "paid", at(1)))
    await client.aclose()


async def test_an_answer_of_no_known_type_is_a_bad_gateway() -> None:
    client = _client(422, {"type": "about:blank", "title": "User mismatch", "status": 422})  # a title is not enough
    with pytest.raises(BadGateway):
        await client.send_order_update(order_update("o", "u", "paid", at(1)))
    await client.aclose()


@pytest.mark.parametrize("body", [b"not json", b'{"no": "outcome"}', b'{"outcome": "sideways"}', b"[]"])
async def test_a_200_that_cannot_be_read_is_a_bad_gateway_not_a_500(body: bytes) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    settings = Settings(internal_token=Secret("internal-token-0123"), api_base_url="http://api")
    client = HttpApiClient(settings, transport=httpx.MockTransport(answer))
    with pytest.raises(BadGateway, match="unreadable answer"):
        await client.send_order_update(order_update("o", "u", "paid", at(1)))
    await client.aclose()
