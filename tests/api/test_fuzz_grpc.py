"""gRPC ``UpdatesService``: whatever a client sends, no UNKNOWN or INTERNAL (nor UNAVAILABLE: the shards
are up), and nothing written — a real api process, real PostgreSQL.

Requests go through a generic method with no serializers, so any bytes can be the message; metadata is
anything a gRPC client lets through (printable ASCII text values, any bytes in ``-bin`` keys):
``authorization`` missing, garbled, huge, repeated, with a wrong scheme; other keys by the dozen.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from shared.proto import updates_pb2
from tests.api.api_process import INTERNAL, PUBLIC, SEEDED_DISPUTE, SEEDED_ORDER, ApiProcess

SERVICE = "/webhooks.v1.UpdatesService/"
FAULTS = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS}
Metadata = list[tuple[str, str | bytes]]


@pytest.fixture(scope="module")
def channel(api_process: ApiProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(api_process.grpc_target) as channel:
        yield channel


printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
authorization = (st.sampled_from([INTERNAL, INTERNAL.lower(), PUBLIC, "Bearer", "Bearer ", INTERNAL.split()[1],
                                  f"Basic {INTERNAL.split()[1]}", f"{INTERNAL} x", f"{INTERNAL}x"])
                 | st.text(printable, max_size=80))
# grpcio refuses metadata past 8 KiB (RESOURCE_EXHAUSTED) and then reconnects, ~100 ms: one example in ten
huge_metadata = st.sampled_from([[]] * 9 + [[("authorization", "Bearer " + "x" * 9_000)], [("x-big", "x" * 20_000)],
                                            [("authorization", "Bearer " + "x" * 4_000)] * 3])
other_keys = st.sampled_from(["x-correlation-id", "traceparent", "user-agent", "content-type", "te", "grpc-timeout",
                              "grpc-encoding", "grpc-accept-encoding", "authorization-bin", "x-big"]) | st.from_regex(
    r"\A[a-z0-9][a-z0-9_.-]{0,20}\Z")


@st.composite
def metadata(draw: st.DrawFn) -> Metadata:
    pairs: Metadata = [("authorization", value) for value in draw(st.lists(authorization, max_size=3)
                                                                   | st.just([INTERNAL]))]
    for key in draw(st.lists(other_keys, max_size=5)):
        value: str | bytes = draw(st.binary(max_size=100) if key.endswith("-bin") else st.text(printable, max_size=100))
        pairs.append((key, value))
    return draw(st.permutations(pairs + draw(huge_metadata)))


def _unknown(text: str) -> str:
    return "nx-" + text  # no order or dispute has such an id: never applicable


@st.composite
def near_valid(draw: st.DrawFn, kind: type) -> bytes:
    fields = {name: draw(st.text(max_size=70)) for name in kind.DESCRIPTOR.fields_by_name if name != "amount"}
    for name in ("order_id", "dispute_id"):
        if name in fields:
            fields[name] = _unknown(fields[name])
    fields["status"] = draw(st.sampled_from(["paid", "opened", "won", "", "bogus"]))
    fields["occurred_at"] = draw(st.sampled_from(["2026-11-20T12:00:00Z", "9999-12-31T23:59:59-01:00", "soon"]))
    fields["currency"] = draw(st.sampled_from(["EUR", "EUR\n", "eur"]))
    fields["amount"] = draw(st.integers(min_value=-(2**63), max_value=2**63 - 1))
    return kind(**fields).SerializeToString()


_order = {**SEEDED_ORDER, "provider_event_id": "pe-x", "event_id": "ev-x", "occurred_at": "2026-11-20T12:00:00Z",
          "received_at": "2026-11-20T12:00:01Z"}
refused = st.sampled_from([  # reach the database and are refused there: 422, 422, 409 (nothing written)
    ("SendOrderUpdate", updates_pb2.OrderUpdate(**{**_order, "status": "refunded"})),
    ("SendOrderUpdate", updates_pb2.OrderUpdate(**{**_order, "status": "paid", "user_id": "intruder"})),
    ("SendDisputeUpdate", updates_pb2.DisputeUpdate(**{**_order, "dispute_id": SEEDED_DISPUTE, "status": "opened",
                                                      "provider_event_id": "pe-opened", "reason": "fraudulent",
                                                      "event_id": "ev-opened"})),
]).map(lambda call: (call[0], call[1].SerializeToString()))


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, bytes]:
    method = draw(st.sampled_from(["SendOrderUpdate", "SendDisputeUpdate"] * 4 + ["SendUpdates", "Nope", ""]))
    kind = updates_pb2.DisputeUpdate if method == "SendDisputeUpdate" else updates_pb2.OrderUpdate
    request = draw(st.binary(max_size=300) | near_valid(kind) | st.sampled_from([b"", b"\x0a\x05ab", b"\xff" * 8]))
    return draw(st.just((method, request)) | refused)


@settings(max_examples=400, deadline=None)
@given(call=calls(), sent=metadata())
def test_updates_service_never_a_fault_never_a_row(api_process: ApiProcess, channel: grpc.Channel,
                                                   call: tuple[str, bytes], sent: Metadata) -> None:
    method, request = call
    note(f"{method} {request!r} metadata={[(key, str(value)[:80]) for key, value in sent]}")
    unary = channel.unary_unary(SERVICE + method)  # no serializers: the bytes are sent as they are
    try:
        unary(request, metadata=sent, timeout=10)
    except grpc.RpcError as error:
        assert error.code() not in FAULTS, f"{error.code()}: {error.details()}"
    api_process.assert_nothing_written()


@pytest.mark.parametrize("size", [64 * 1024, 4 * 1024 * 1024 + 1], ids=["64KiB", "over-4MiB"])
def test_a_huge_message_is_refused_cleanly(api_process: ApiProcess, channel: grpc.Channel, size: int) -> None:
    unary = channel.unary_unary(SERVICE + "SendOrderUpdate")
    with pytest.raises(grpc.RpcError) as refused:
        unary(b"\x0a" + b"\xff" * (size - 1), metadata=[("authorization", INTERNAL)], timeout=10)
    assert refused.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
    api_process.assert_nothing_written()
