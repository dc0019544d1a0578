"""Hostile input gets a typed 4xx answer, costs the gateway little, and leaves the connection usable:
fragment bombs, bodies that are not JSON objects, invalid UTF-8, deep nesting, NUL characters and
values the PDP refuses."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from graphql import parse

from gateway.document_checks import expanded_size, nul_argument
from tests.conftest import Gateway

CHEAP = "{ apps { clientId } }"


def fragment_bomb(levels: int) -> str:
    """A small document whose fragments each spread the previous one twice: 2^levels fields expanded."""
    fragments = ["fragment F0 on Query { apps { clientId } }"] + [
        f"fragment F{n} on Query {{ ...F{n - 1} ...F{n - 1} }}" for n in range(1, levels + 1)
    ]
    return f"query {{ ...F{levels} }}\n" + "\n".join(fragments)


def test_the_expanded_size_counts_every_spread_without_expanding_it() -> None:
    assert expanded_size(parse(fragment_bomb(3))) == 2**3 * 2
    assert expanded_size(parse(fragment_bomb(60))) == 2**60 * 2
    assert expanded_size(parse("{ a { b c } ... on Query { d } }")) == 4
    cyclic = "query { ...A } fragment A on Query { x ...B } fragment B on Query { y ...A }"
    assert expanded_size(parse(cyclic)) == 2


def test_nul_is_found_in_variables_and_in_literals_with_its_argument_named() -> None:
    document = parse('mutation { createNote(patientId: "p", title: "t", text: "a\\u0000b") { id } }')
    assert nul_argument(document, None) == "text"
    nested = parse('{ observations(filter: {code: "x\\u0000"}) { totalCount } }')
    assert nul_argument(nested, None) == "filter.code"
    passed = parse("mutation($input: In) { create(input: $input) { id } }")
    assert nul_argument(passed, {"input": {"items": ["ok", "b\x00"]}}) == "input.items"
    inside = parse("mutation($t: String) { create(input: {note: {text: $t}}) { id } }")
    assert nul_argument(inside, {"t": "a\x00"}) == "input.note.text"
    assert nul_argument(parse("{ x }"), {"unused": "\x00"}) == "$unused"
    assert nul_argument(parse('{ x(a: "\\u0041") }'), {"v": "fine"}) is None


def test_a_fragment_bomb_is_refused_before_validation_and_a_parallel_request_is_not_held_up(
    gateway: Gateway,
) -> None:
    token = gateway.token("gp")
    gateway.post(CHEAP, token=token)

    def timed(query: str) -> tuple[float, Any]:
        started = time.perf_counter()
        response = gateway.post(query, token=token)
        return time.perf_counter() - started, response

    with ThreadPoolExecutor(4) as pool:
        bombs = [pool.submit(timed, fragment_bomb(30)) for _ in range(3)]
        cheap = pool.submit(timed, CHEAP)
        cheap_took, cheap_response = cheap.result()
        answers = [b.result() for b in bombs]
    for took, response in answers:
        error = response.json()["errors"][0]
        assert error["extensions"] == {"code": "SELECTION_TOO_LARGE", "limit": 1000}
        assert "data" not in response.json()
        # Expanded, N=30 is a billion fields: a refusal in well under a second is one that never expanded it.
        assert took < 1.0
    assert cheap_response.json()["data"]["apps"] is not None and cheap_took < 1.0


def test_a_selection_within_the_limit_is_still_answered(gateway: Gateway) -> None:
    result = gateway.query(fragment_bomb(8), "gp")
    assert "errors" not in result and isinstance(result["data"]["apps"], list)


def http_exchange(gateway: Gateway, bodies: list[bytes]) -> list[tuple[int, bytes]]:
    """POST each body in turn on one keep-alive connection; (status, body) for each. Fails if the
    gateway closes the connection after an answer."""
    url = urlsplit(gateway.base_url)
    token = gateway.token("gp")
    answers = []
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        for body in bodies:
            head = (
                f"POST /graphql HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            sock.sendall(head.encode() + body)
            status_line = reader.readline()
            assert status_line, "the gateway closed the connection"
            headers = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            assert headers.get("connection") != "close"
            answers.append((int(status_line.split()[1]), reader.read(int(headers["content-length"]))))
    return answers


@pytest.mark.parametrize(
    "body",
    [b'"str"', b"1", b"null", b"true", b"[]", b"\xff\xfe{", b'{"query": "\xc3\x28"}', b"[" * 5000 + b"]" * 5000],
    ids=["string", "number", "null", "boolean", "list", "invalid-utf8", "invalid-utf8-in-string", "deep-nesting"],
)
def test_a_body_that_is_not_a_json_object_is_a_400_and_the_connection_answers_the_next_request(
    gateway: Gateway, body: bytes
) -> None:
    [(status, answer), (next_status, next_answer)] = http_exchange(gateway, [body, orjson.dumps({"query": CHEAP})])
    assert status == 400
    code = "BATCH_NOT_SUPPORTED" if body == b"[]" else "BAD_REQUEST"
    assert orjson.loads(answer)["errors"][0]["extensions"]["code"] == code
    assert b"Traceback" not in answer
    assert next_status == 200 and orjson.loads(next_answer)["data"]["apps"] is not None


def test_deeply_nested_variables_are_a_400(gateway: Gateway) -> None:
    body = b'{"query": "{ apps { clientId } }", "variables": {"v": ' + b"[" * 3000 + b"]" * 3000 + b"}}"
    [(status, answer)] = http_exchange(gateway, [body])
    assert status == 400 and orjson.loads(answer)["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_a_nul_character_in_a_literal_filter_is_bad_input_naming_the_argument(gateway: Gateway) -> None:
    result = gateway.query('{ observations(first: 1, filter: {code: "8867-4\\u0000"}) { totalCount } }', "gp")
    assert result["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "argument": "filter.code"}


def test_a_value_the_pdp_refuses_is_bad_input_not_an_outage(gateway: Gateway) -> None:
    response = gateway.post('{ app(clientId: "") { clientId } }', persona="policy-admin")
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert gateway.query(CHEAP, "policy-admin")["data"]["apps"]
