"""No input, however malformed, gets a 5xx from the api or writes a row (a real api process, real PostgreSQL).

Every HTTP surface: the internal updates (JSON and Protobuf; Authorization, Content-Type,
method and body garbled), the public endpoints (Authorization and Idempotency-Key garbled:
arbitrary octets, huge, repeated, wrong schemes; ids and query strings of any shape) and the
probes. "No 5xx, nothing written" is checked after every example. Bodies that parse are kept
from being applicable (unknown ids, refused transitions, a taken order id), so any new row is a bug.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote, quote_from_bytes

import httpx
from hypothesis import given, note, settings
from hypothesis import strategies as st

from shared.proto import updates_pb2
from tests.api.api_process import INTERNAL, PUBLIC, SEEDED_DISPUTE, SEEDED_ORDER, ApiProcess


@dataclass(frozen=True)
class Long:
    """A long value, shown short in a failing example (Hypothesis warns about reprs over 50 kB)."""

    char: str
    count: int
    prefix: str = ""

    def __repr__(self) -> str:
        return f"{self.prefix!r} + {self.char!r} * {self.count}"

    def __str__(self) -> str:
        return self.prefix + self.char * self.count


Headers = list[tuple[str, bytes]]
header_octets = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
huge = st.builds(Long, st.just("x"), st.integers(min_value=1_000, max_value=40_000))  # past hypercorn's 16 KiB head
garbled = st.text(header_octets, max_size=80) | huge


def values(*plausible: str) -> st.SearchStrategy[list[str | Long]]:
    """All the values one header takes in a request: absent, one, or repeated; plausible or garbled."""
    one = st.sampled_from(plausible) | garbled
    return st.lists(one, max_size=3) | st.just([plausible[0]])


def authorizations(token: str) -> st.SearchStrategy[list[str | Long]]:
    other = PUBLIC if token == INTERNAL else INTERNAL
    scheme, secret = token.split()
    return values(token, token.lower(), token.upper(), f"Basic {secret}", secret, scheme, f"{scheme} ",
                  f"{token} {secret}", f"{scheme}  {secret}", f"{token}x", other)


def headers(**named: list[str | Long]) -> Headers:
    """Raw header octets as they may arrive (latin-1), each value stripped as HTTP does."""
    return [(name.replace("_", "-"), str(value).strip().encode("latin-1")) for name, all_values in named.items()
            for value in all_values]


def query_strings() -> st.SearchStrategy[str | Long]:
    visible = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#")  # no fragment
    return (st.just("") | st.text(visible, max_size=60).map(lambda q: "?" + q)
            | st.text(max_size=40).map(lambda q: "?" + quote(q, safe="=&"))
            | st.sampled_from(["?", "?&&&", "?a=1&a=2", "?%", "?%zz=%ff", "?=", "?name[]=x", "?%00"])
            | st.builds(Long, st.just("q"), st.integers(min_value=1_000, max_value=20_000), st.just("?q=")))


def send(api: ApiProcess, method: str, raw_path: str, sent: Headers, body: bytes | Long | None = None
         ) -> httpx.Response:
    note(f"{method} {shown(raw_path)} headers={shown(sent)} body={shown(body)}")  # Hypothesis prints no arguments
    url = httpx.URL(api.url).copy_with(raw_path=raw_path.encode("ascii"))
    return api.http.request(method, url, headers=sent, content=str(body).encode() if isinstance(body, Long) else body)


def shown(value: object, limit: int = 600) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def check(api: ApiProcess, response: httpx.Response) -> None:
    """After every example: no 5xx, an error is a problem document (hypercorn's own empty 400/431 aside),
    and no row was written."""
    assert response.status_code < 500, response.text
    if response.status_code >= 400 and response.content:
        assert response.headers["content-type"] == "application/problem+json", response.text
    api.assert_nothing_written()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
oversized = st.builds(Long, st.just("{"), st.integers(min_value=64 * 1024 + 1, max_value=150_000))


# --- internal updates -------------------------------------------------------------------

def _unknown(ids: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return ids.map(lambda text: "nx-" + text)  # no order or dispute has such an id: never applicable


_update_fields = {
    "provider_event_id": st.text(max_size=300), "order_id": _unknown(st.text(max_size=80)),
    "dispute_id": _unknown(st.text(max_size=80)), "user_id": st.text(max_size=80),
    "status": st.sampled_from(["paid", "PAID", "", "created", "opened", "won"]), "reason": st.text(max_size=300),
    "amount": st.integers() | st.floats(), "currency": st.text(max_size=4) | st.just("EUR\n"),
    "occurred_at": st.text(max_size=40) | st.sampled_from(["2026-11-20T12:00:00Z", "9999-12-31T23:59:59-01:00"]),
    "event_id": st.text(max_size=70), "correlation_id": st.text(max_size=140),
    "received_at": st.sampled_from(["2026-11-20T12:00:00Z", "yesterday", "0001-01-01T00:00:00+01:00"]),
}
near_valid_json = st.fixed_dictionaries(_update_fields).map(lambda v: json.dumps(v).encode())
_seeded_order_update = {**SEEDED_ORDER, "provider_event_id": "pe-x", "status": "paid", "event_id": "ev-x",
                        "occurred_at": "2026-11-20T12:00:00Z", "received_at": "2026-11-20T12:00:01Z"}
refused_json = st.sampled_from([  # reach the database, and are refused there: 422, 422, 409
    {**_seeded_order_update, "status": "refunded"},  # created → refunded is no transition
    {**_seeded_order_update, "user_id": "intruder"},
    {**_seeded_order_update, "dispute_id": SEEDED_DISPUTE, "provider_event_id": "pe-opened", "status": "opened",
     "reason": "fraudulent", "occurred_at": "2026-11-20T12:00:00Z", "event_id": "ev-opened"},
]).map(lambda v: json.dumps(v).encode())


@st.composite
def near_valid_protobuf(draw: st.DrawFn, path: str) -> bytes:
    kind = updates_pb2.OrderUpdate if path.endswith("orders") else updates_pb2.DisputeUpdate
    fields = {name: draw(st.text(max_size=80)) for name in kind.DESCRIPTOR.fields_by_name if name != "amount"}
    for name in ("order_id", "dispute_id"):
        if name in fields:
            fields[name] = "nx-" + fields[name]
    fields["status"] = draw(st.sampled_from(["paid", "opened", "", "bogus"]))
    fields["amount"] = draw(st.integers(min_value=-(2**63), max_value=2**63 - 1))
    return kind(**fields).SerializeToString()


@st.composite
def internal_requests(draw: st.DrawFn) -> tuple[str, str, Headers, bytes]:
    path = draw(st.sampled_from(["/internal/updates/orders", "/internal/updates/disputes"]))
    body = draw(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()) | near_valid_json
                | refused_json | near_valid_protobuf(path) | oversized)
    sent = headers(authorization=draw(authorizations(INTERNAL)),
                   content_type=draw(values("application/json", "application/x-protobuf",
                                            "application/json; charset=utf-8", "Application/X-Protobuf",
                                            "text/plain", "application/problem+json", "multipart/form-data")))
    method = draw(st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE", "HEAD"]))
    return method, path + str(draw(query_strings() | st.sampled_from(["/", "x"]))), sent, body


@settings(max_examples=500, deadline=None)
@given(request=internal_requests())
def test_internal_updates_never_a_5xx_never_a_row(api_process: ApiProcess,
                                                  request: tuple[str, str, Headers, bytes]) -> None:
    method, path, sent, body = request
    check(api_process, send(api_process, method, path, sent, body))


# --- public endpoints -------------------------------------------------------------------

ids = (st.sampled_from([SEEDED_ORDER["order_id"], SEEDED_DISPUTE, "", "..", "%", "%zz", "a/b", "a%2Fb", "%00",
                        "%0A", "x" * 65, "%ED%A0%80"])
       | st.text(max_size=80).map(lambda text: quote(text, safe=""))
       | st.binary(max_size=40).map(lambda raw: quote_from_bytes(raw, safe=""))
       | st.builds(Long, st.just("x"), st.integers(min_value=1_000, max_value=20_000)))
edge_values = st.sampled_from(["EUR\n", "eur", "EURO", "", "u\n", "u\x00", "\ud800", 2**63, -1, 1.5, None])
_taken_order_id = st.sampled_from(["user_id", "amount", "currency"]).flatmap(
    lambda field: (json_values | edge_values).map(lambda value: {**SEEDED_ORDER, field: value}))  # 409 at best
_invalid_order_id = st.sampled_from(["", "x" * 65, "a\nb", "o\n", "a\x00b", 5, None, ["o"]]).map(
    lambda order_id: {**SEEDED_ORDER, "order_id": order_id})
order_bodies = (st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()) | oversized
                | (_taken_order_id | _invalid_order_id | st.just(SEEDED_ORDER)).map(lambda v: json.dumps(v).encode()))


@st.composite
def public_requests(draw: st.DrawFn) -> tuple[str, str, Headers, bytes | None]:
    authorization = draw(authorizations(PUBLIC))
    if draw(st.booleans()):
        sent = headers(authorization=authorization,
                       content_type=draw(values("application/json", "application/json; charset=utf-8", "text/plain",
                                                "APPLICATION/JSON", "application/problem+json")),
                       idempotency_key=draw(values("key-1", "", "k" * 255, "k" * 256)))
        return "POST", f"/orders{draw(query_strings())}", sent, draw(order_bodies)
    collection = draw(st.sampled_from(["orders", "disputes"]))
    method = draw(st.sampled_from(["GET"] * 6 + ["HEAD", "DELETE", "PUT", "OPTIONS"]))
    return method, f"/{collection}/{draw(ids)}{draw(query_strings())}", headers(authorization=authorization), None


@settings(max_examples=500, deadline=None)
@given(request=public_requests())
def test_public_endpoints_never_a_5xx_never_a_row(api_process: ApiProcess,
                                                  request: tuple[str, str, Headers, bytes | None]) -> None:
    method, path, sent, body = request
    check(api_process, send(api_process, method, path, sent, body))


# --- probes -----------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(path=st.sampled_from(["/healthz", "/readyz", "/metrics"]), query=query_strings(),
       method=st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "OPTIONS"]),
       authorization=values(PUBLIC, INTERNAL))
def test_probes_answer_whatever_the_query(api_process: ApiProcess, path: str, query: str, method: str,
                                          authorization: list[str]) -> None:
    response = send(api_process, method, f"{path}{query}", headers(authorization=authorization))
    check(api_process, response)
    if method in ("GET", "HEAD") and response.status_code != 431:  # the shards are up: ready
        assert response.status_code == 200, response.text
