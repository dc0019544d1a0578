"""The hostile-input suite: more than 10,000 requests a third-party app could send, generated from the
schema (hypothesis-graphql) and mangled (broken documents, random bodies and content types, made-up ids and
cursors, huge and invalid strings, odd methods and Accept headers). Not one may get a 5xx, a traceback or
SQL text back, and the gateway's memory afterwards stays within 10% of before."""

from __future__ import annotations

import base64
import json
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes, queries

from tests.conftest import PROJECT, Gateway, start_replica, stop_gateway
from tests.test_third_party_limits import third_party_app

GENERATED_DOCUMENTS = 250
SEED = 16
LEAKS = ("Traceback", "asyncpg", "SELECT ", " FROM ", "psycopg", 'File "/', "site-packages")
FUZZ_SCOPES = "openid fhirUser user/*.rs"


@dataclass
class Request:
    """One request to send: method, headers and body (or query string)."""

    kind: str
    method: str = "POST"
    content: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    params: dict[str, str] | None = None


def generated_documents() -> list[str]:
    """Query documents hypothesis-graphql draws from the served schema (the same ones every run)."""
    custom = {
        "Date": st.dates().map(lambda d: nodes.String(d.isoformat())),
        "DateTime": st.datetimes().map(lambda d: nodes.String(d.isoformat() + "Z")),
        "JSON": st.text(max_size=20).map(nodes.String),
    }
    found: list[str] = []

    @settings(
        max_examples=GENERATED_DOCUMENTS,
        database=None,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    @given(queries((PROJECT / "schema.graphql").read_text(), custom_scalars=custom))
    def collect(document: str) -> None:
        found.append(document)

    collect()
    return found


def json_body(payload: object) -> bytes:
    return json.dumps(payload).encode()


def requests(documents: list[str], rng: random.Random) -> Iterator[Request]:
    """The whole suite: each generated document in four ways, then each mangling many times."""
    for document in documents:
        yield Request("generated", content=json_body({"query": document}))
        yield Request("generated", content=json_body({"query": document}), headers=_strict())
        yield Request("generated-get", method="GET", headers={"Accept": "application/json"}, params={"query": document})
        cut = rng.randrange(1, max(2, len(document)))
        yield Request("truncated", content=json_body({"query": document[:cut]}), headers=_strict())
    manglings: list[tuple[str, int, Callable[[random.Random], Request]]] = [
        ("random-bytes", 1800, lambda r: Request("random-bytes", content=r.randbytes(r.randrange(0, 400)))),
        ("random-json", 1000, lambda r: Request("random-json", content=json_body(_random_json(r, 4)))),
        ("content-type", 600, _odd_content_type),
        ("global-id", 1700, _made_up_id),
        ("cursor", 1700, _made_up_cursor),
        ("huge-string", 150, _huge_string),
        ("invalid-utf8", 600, _invalid_utf8),
        ("accept", 400, _odd_accept),
        ("method", 300, _odd_method),
        ("get-junk", 500, _junk_get),
        ("variables", 600, _odd_variables),
    ]
    for _, count, make in manglings:
        for _ in range(count):
            yield make(rng)


def _strict() -> dict[str, str]:
    return {"Content-Type": "application/json", "Accept": "application/graphql-response+json"}


def _random_json(rng: random.Random, depth: int) -> Any:
    choice = rng.randrange(7 if depth > 0 else 5)
    if choice == 0:
        return None
    if choice == 1:
        return rng.random() * 10 ** rng.randrange(0, 30)
    if choice == 2:
        return rng.choice([True, False, 0, -1, 2**63])
    if choice == 3:
        return "".join(chr(rng.randrange(0, 0x2FFF)) for _ in range(rng.randrange(0, 30)))
    if choice == 4:
        return rng.choice(["query", "{ apps { clientId } }", "mutation", "{", "", "documentId"])
    if choice == 5:
        return [_random_json(rng, depth - 1) for _ in range(rng.randrange(0, 4))]
    keys = ["query", "variables", "operationName", "extensions", "documentId", "x"]
    return {rng.choice(keys): _random_json(rng, depth - 1) for _ in range(rng.randrange(0, 5))}


def _odd_content_type(rng: random.Random) -> Request:
    kind = rng.choice(
        ["text/plain", "application/graphql", "multipart/form-data", "", "application/json; charset=latin-1", "x/y"]
    )
    return Request(
        "content-type", content=json_body({"query": "{ apps { clientId } }"}), headers={"Content-Type": kind}
    )


def _probe(kind: str, rng: random.Random, value: object, queries: list[str]) -> Request:
    """One of `queries` with `value` as its only variable."""
    query = rng.choice(queries)
    name = query[query.index("$") + 1 : query.index(":")]
    return Request(kind, content=json_body({"query": query, "variables": {name: value}}))


def _made_up_id(rng: random.Random) -> Request:
    kind = rng.choice(["Patient", "Observation", "X", ""])
    raw = rng.choice(
        [
            base64.b64encode(f"{kind}:{uuid.UUID(int=rng.getrandbits(128))}".encode()).decode(),
            base64.b64encode(rng.randbytes(rng.randrange(0, 60))).decode(),
            "".join(chr(rng.randrange(32, 0x10FFF)) for _ in range(rng.randrange(0, 40))),
            str(rng.getrandbits(64)),
        ]
    )
    return _probe(
        "global-id",
        rng,
        raw,
        [
            "query($id: ID!) { node(id: $id) { id } }",
            "query($id: ID!) { patient(id: $id) { name { text } } }",
            "query($id: ID!) { patient(id: $id) { observations(first: 3) { totalCount } } }",
        ],
    )


def _made_up_cursor(rng: random.Random) -> Request:
    cursor = rng.choice(
        [
            base64.b64encode(rng.randbytes(rng.randrange(0, 80))).decode(),
            base64.b64encode(json.dumps(_random_json(rng, 2)).encode()).decode(),
            "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(0, 50))),
        ]
    )
    return _probe(
        "cursor",
        rng,
        cursor,
        [
            "query($c: String) { observations(first: 5, after: $c) { edges { cursor } } }",
            "query($c: String) { patients(first: 5, after: $c) { totalCount } }",
            "query($c: String) { changes(first: 5, after: $c) { pageInfo { endCursor } } }",
        ],
    )


def _huge_string(rng: random.Random) -> Request:
    size = rng.choice([10_000, 100_000, 300_000, 1_100_000])
    text = rng.choice(["x", "æ", "\u0000", "🏃"]) * size
    query = rng.choice(
        [
            "query($c: String) { observations(first: 1, filter: {code: $c}) { totalCount } }",
            "query($c: String!) { __type(name: $c) { name } }",
        ]
    )
    return Request("huge-string", content=json_body({"query": query, "variables": {"c": text}}))


def _invalid_utf8(rng: random.Random) -> Request:
    bad = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"])
    content = b'{"query": "{ apps { clientId } }", "operationName": "' + bad + b'"}'
    if rng.random() < 0.5:
        content = b'{"query": "{ observations(filter: {code: \\"' + bad + b'\\"}) { totalCount } }"}'
    return Request("invalid-utf8", content=content)


def _odd_accept(rng: random.Random) -> Request:
    accept = rng.choice(
        [
            "text/html",
            "text/csv",
            "*/*;q=0",
            "application/xml",
            "",
            "application/graphql-response+json;q=0.5, */*;q=0.1",
            "ÿ",
        ]
    )
    return Request(
        "accept",
        content=json_body({"query": "{ apps { clientId } }"}),
        headers={"Content-Type": "application/json", "Accept": accept},
    )


def _odd_method(rng: random.Random) -> Request:
    return Request("method", method=rng.choice(["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]), content=b"{}")


def _junk_get(rng: random.Random) -> Request:
    params = {
        rng.choice(["query", "variables", "extensions", "operationName", "documentId", "junk"]): "".join(
            chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(0, 60))
        )
        for _ in range(rng.randrange(1, 4))
    }
    return Request("get-junk", method="GET", headers={"Accept": "application/json"}, params=params)


def _odd_variables(rng: random.Random) -> Request:
    query = rng.choice(
        [
            "query($n: Int) { apps(first: $n) { clientId } }",
            "query($f: ObservationFilter) { observations(first: 2, filter: $f) { totalCount } }",
            "mutation($input: ObservationInput!) { createObservation(input: $input) { id } }",
        ]
    )
    return Request("variables", content=json_body({"query": query, "variables": _random_json(rng, 3)}))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def target(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A replica of its own, so that its memory is the suite's alone; without the console span exporter the
    other tests read, which would spend most of its time writing ten thousand requests' spans."""
    started = start_replica(gateway, tmp_path_factory.mktemp("hostile"), {"OTEL_TRACES_EXPORTER": "none"})
    try:
        yield started
    finally:
        stop_gateway(started)


def test_ten_thousand_hostile_requests_get_no_5xx_no_internals_and_leave_memory_as_it_was(
    gateway: Gateway, target: Gateway, capsys: pytest.CaptureFixture[str]
) -> None:
    client_id = third_party_app(gateway, {"requestsPerMinute": 1_000_000, "costPerMinute": 1_000_000_000})
    token = target.token("gp", client_id=client_id, scope=FUZZ_SCOPES)
    rng = random.Random(SEED)
    suite = list(requests(generated_documents(), rng))
    # The caches (parsed and validated documents, 256 each; prepared statements) fill on the first sight of
    # each kind of request; a warm-up of every generated document and a sixteenth of the rest fills them, so
    # growth over the measured run is what the run keeps, not what the caches are for.
    generated = 4 * GENERATED_DOCUMENTS
    warm_up = suite[:generated] + suite[generated::16]
    assert len(suite) >= 10_000

    statuses: Counter[tuple[str, int]] = Counter()
    leaked: list[str] = []
    counting = threading.Lock()

    address = urlsplit(target.base_url)

    def send(http: HTTPConnection, request: Request) -> None:
        path = "/graphql" + (f"?{urlencode(request.params)}" if request.params else "")
        headers = {"Authorization": f"Bearer {token}", **request.headers}
        http.request(request.method, path, body=request.content if request.method != "GET" else None, headers=headers)
        response = http.getresponse()
        text = response.read().decode("utf-8", "replace")
        with counting:
            statuses[(request.kind, response.status)] += 1
            if response.status >= 500 or any(leak in text for leak in LEAKS):
                leaked.append(f"{request.kind} {response.status}: {text[:300]}")

    def send_all(batch: list[Request]) -> None:
        shards = [batch[i::8] for i in range(8)]

        def worker(shard: list[Request]) -> None:
            # The standard library's keep-alive client: the suite measures the gateway, not a client's overhead.
            http = HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=30)
            try:
                for request in shard:
                    send(http, request)
            finally:
                http.close()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(worker, shards))

    send_all(warm_up)
    before = rss_kb(target.process.pid)
    statuses.clear()
    send_all(suite)
    after = rss_kb(target.process.pid)

    by_class = Counter(f"{status // 100}xx" for (_, status), n in statuses.items() for _ in range(n))
    with capsys.disabled():
        print(
            f"\nhostile-input suite: {sum(statuses.values())} requests, {dict(sorted(by_class.items()))}; "
            f"gateway RSS {before / 1024:.1f} MB before, {after / 1024:.1f} MB after"
        )
    assert sum(statuses.values()) == len(suite)
    assert leaked == []
    assert by_class["2xx"] > 500, "generated documents ran, not only refusals"
    assert after <= before * 1.10
