"""GraphQL over HTTP, as the GraphQL Foundation's specification describes it, for third parties.

What this transport does on every request, in order:
- GET for queries (never mutations: 405 with `Allow: POST`) and POST with an `application/json` body;
  anything else 405 or 415. A body over `max_body_bytes` is refused with 413 before it is read whole.
- Answers `application/graphql-response+json` when the client accepts it, `application/json` when it asks
  for that, for `*/*` or says nothing (406 when it accepts neither). Under `graphql-response+json` a
  request that fails to parse, validate or coerce its variables gets 400 and no `data` entry; under
  `application/json` the same errors come with 200, as that media type's clients expect.
- A trusted document named by `documentId` (or Apollo's `persistedQuery`) is run from its registered
  text; where trusted documents are required, a third-party app's query text is refused (in demo mode,
  every persona's app may still send text, so GraphiQL works for all of them).
- The request runs within its deadline; past it the work is cancelled (and with it the statement in
  PostgreSQL), 504 is answered and the timeout audited. A client that goes away cancels it the same way.
- `Cache-Control: no-store` on every answer: any of them may carry patient data.

Strawberry's view speaks only `application/json`, answers request errors with 200 and knows neither body
limits nor trusted documents or deadlines, so this transport is written here; it runs strawberry's
schema, and strawberry's view still serves the GraphiQL page and websockets (gateway/app.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from graphql import GraphQLError
from opentelemetry import trace
from starlette.requests import Request
from starlette.types import Receive, Scope, Send
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from gateway import deadline
from gateway.auth import PRINCIPAL_SCOPE_KEY
from gateway.context import Context
from gateway.errors import (
    AksonError,
    AuditUnavailable,
    BadRequest,
    BatchNotSupported,
    DeadlineExceeded,
    MethodNotAllowed,
    NotAcceptable,
    PayloadTooLarge,
    RequestRefused,
    ServiceUnavailable,
    TrustedDocumentRequired,
    UnsupportedMediaType,
    as_client_error,
    graphql_error_payload,
)
from gateway.personas import PERSONA_APPS
from gateway.runtime import Runtime, runtime_of
from gateway.trusted_documents import requested_document, sha256_of

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
_PARAMETERS = {"query": str, "operationName": str, "variables": dict, "extensions": dict, "documentId": str}

log = logging.getLogger(__name__)


def negotiate(accept: str | None) -> str:
    """The media type to answer in: `graphql-response+json` when the client lists it before (or instead
    of) `application/json`; `application/json` for it, for `*/*`, `application/*` and no Accept at all."""
    if not accept or not accept.strip():
        return JSON
    for item in accept.split(","):
        media, _, params = item.strip().partition(";")
        media = media.strip().lower()
        if "q=0" in params.replace(" ", "") and "q=0." not in params.replace(" ", ""):
            continue
        if media == GRAPHQL_RESPONSE:
            return GRAPHQL_RESPONSE
        if media in (JSON, "*/*", "application/*"):
            return JSON
    raise NotAcceptable(f"this endpoint answers in {GRAPHQL_RESPONSE} or {JSON}; the request accepts neither")


@dataclass
class Answer:
    """An HTTP answer: status, JSON body and extra headers."""

    status: int
    body: dict[str, Any]
    headers: list[tuple[str, str]]


class ClientGone(Exception):
    """The client closed the connection before its request was answered."""


async def read_typed_body(
    receive: Receive, headers: Mapping[str, str], media_types: Collection[str], limit: int, refusal: str
) -> bytes:
    """The whole body of a request whose Content-Type must be one of `media_types` (415 with `refusal`
    otherwise), refused with 413 as soon as it is known to be larger than `limit`."""
    if headers.get("content-type", "").split(";")[0].strip().lower() not in media_types:
        raise UnsupportedMediaType(refusal)
    declared = headers.get("content-length")
    return await read_body(receive, limit, int(declared) if declared and declared.isdigit() else None)


async def read_body(receive: Receive, limit: int, declared: int | None) -> bytes:
    """The whole request body, refused with 413 as soon as it is known to be larger than `limit`."""
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"the request body may hold at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body may hold at most {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _json_object(raw: bytes | str, what: str) -> Any:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"{what} is not valid JSON") from exc
    return parsed


def request_parameters(method: str, query_string: bytes, body: bytes | None, max_variables: int) -> dict[str, Any]:
    """The GraphQL request's parameters from a GET's query string or a POST's JSON body, each checked for
    its type; `variables` are measured against `max_variables` bytes."""
    if method == "GET":
        raw = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
        params: dict[str, Any] = {k: v for k, v in raw.items() if k in _PARAMETERS}
        for name in ("variables", "extensions"):
            if params.get(name):
                if len(params[name]) > max_variables:
                    raise PayloadTooLarge(f"`{name}` may hold at most {max_variables} bytes of JSON")
                params[name] = _json_object(params[name], f"the `{name}` parameter")
            else:
                params.pop(name, None)
    else:
        if not body:
            raise BadRequest("the request has no body: send a JSON object with a `query` string")
        params = _json_object(body, "the request body")
        if isinstance(params, list):
            raise BatchNotSupported("batched requests are not supported: send each operation in its own request")
        if not isinstance(params, dict):
            raise BadRequest("the request body must be a JSON object with a `query` string")
        variables = params.get("variables")
        if isinstance(variables, dict) and variables and len(orjson.dumps(variables)) > max_variables:
            raise PayloadTooLarge(f"`variables` may hold at most {max_variables} bytes of JSON")
    for name, kind in _PARAMETERS.items():
        found = params.get(name)
        if found is not None and not isinstance(found, kind):
            raise BadRequest(f"`{name}` must be {'a string' if kind is str else 'an object'} or null")
    return params


def _is_request_error(result: ExecutionResult) -> bool:
    """Parse, validation and variable-coercion failures: nothing was executed, and the errors are graphql-core's."""
    return result.data is None and bool(result.errors) and all(_request_level(e) for e in result.errors or [])


def _request_level(error: GraphQLError) -> bool:
    original = error.original_error
    return original is None or (isinstance(original, GraphQLError) and not isinstance(original, AksonError))


def _refusal(result: ExecutionResult) -> AksonError | None:
    """The first error of the result that ends the request with its own status (refusals before execution,
    outages), if any."""
    for error in result.errors or []:
        if error.original_error is None:
            continue
        found = as_client_error(error.original_error)
        if isinstance(found, (RequestRefused, ServiceUnavailable)):
            return found
    return None


class GraphQLHttp:
    """The `/graphql` HTTP endpoint (behind authentication): parameters, trusted documents, execution within
    the deadline, audit, and the answer."""

    def __init__(self, schema: Any) -> None:
        self._schema = schema

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        media = JSON
        try:
            media = negotiate(headers.get("accept"))
            answer = await self._answer(scope, receive, headers, media)
        except ClientGone:
            return
        except AksonError as exc:
            answer = self.error_answer(exc)
        await self._send(send, answer, media)

    @staticmethod
    def error_answer(error: AksonError) -> Answer:
        """An answer for a refused request: no `data` entry (`data: null` when an outage withheld it), the
        error's own status."""
        extra = [("allow", error.allow)] if isinstance(error, MethodNotAllowed) else []
        retry = error.extensions.get("retryAfter")
        if retry is not None:
            extra.append(("retry-after", str(retry)))
        body: dict[str, Any] = {"errors": [{"message": error.message, "extensions": error.extensions}]}
        if isinstance(error, ServiceUnavailable):
            body = {"data": None, **body}
        return Answer(error.http_status, body, extra)

    async def _send(self, send: Send, answer: Answer, media: str) -> None:
        body = orjson.dumps(answer.body)
        raw = [
            (b"content-type", f"{media}; charset=utf-8".encode()),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            raw.append((b"x-trace-id", f"{span.trace_id:032x}".encode()))
        raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
        await send({"type": "http.response.start", "status": answer.status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, receive: Receive, headers: dict[str, str], media: str) -> Answer:
        runtime = runtime_of(scope)
        settings = runtime.settings
        method = scope["method"]
        if method not in ("GET", "POST"):
            raise MethodNotAllowed("GraphQL is served with GET (queries) and POST", allow="GET, POST")
        body = None
        if method == "POST":
            body = await read_typed_body(
                receive, headers, (JSON,), settings.max_body_bytes, f"a POST body must be {JSON}"
            )
        params = request_parameters(method, scope.get("query_string", b""), body, settings.max_variables_bytes)
        context = Context.build(runtime, Request(scope, receive), scope[PRINCIPAL_SCOPE_KEY])
        query = await self._document_text(runtime, context, params)
        deadline.start(settings.request_deadline_seconds)
        work = asyncio.ensure_future(self._execute(runtime, context, method, query, params, media))
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            done, _ = await asyncio.wait(
                {work, gone}, timeout=settings.request_deadline_seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            gone.cancel()
        if work in done:
            return work.result()
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work
        if gone in done and not gone.cancelled():
            await self._audit_abandoned(runtime, context, "CLIENT_DISCONNECTED")
            raise ClientGone
        await self._audit_abandoned(runtime, context, DeadlineExceeded.code)
        raise DeadlineExceeded.after(settings.request_deadline_seconds)

    async def _document_text(self, runtime: Runtime, context: Context, params: dict[str, Any]) -> str:
        """The text to run: a trusted document's, or the query's where text is allowed. A request that sends
        both (Apollo's persisted queries do, after PERSISTED_QUERY_NOT_FOUND) runs the registered text, or
        its own where text is allowed and the hash is the text's."""
        principal = context.principal
        settings = runtime.settings
        text_allowed = (
            not settings.trusted_documents_required
            or settings.is_first_party(principal.client_id)
            or (settings.demo and principal.client_id in PERSONA_APPS)
        )
        ref = requested_document(params)
        query = params.get("query")
        if ref is not None:
            if query is None or not text_allowed:
                return await runtime.trusted_documents.text(principal.client_id, ref)
            if sha256_of(str(query)) != ref.sha256:
                raise BadRequest("the document id is not the SHA-256 of the query sent with it")
            return str(query)
        if query is None:
            raise BadRequest("the request has no `query` (or `documentId`)")
        if not text_allowed:
            raise TrustedDocumentRequired(
                "this gateway runs only the operations an app has registered: send `documentId` "
                "(sha256:<hash of the registered text>) instead of `query`",
                clientId=principal.client_id,
            )
        return str(query)

    async def _execute(
        self, runtime: Runtime, context: Context, method: str, query: str | None, params: dict[str, Any], media: str
    ) -> Answer:
        allowed = OperationType.from_http("GET" if method == "GET" else "POST")
        try:
            result = await self._schema.execute(
                query,
                variable_values=params.get("variables"),
                context_value=context,
                operation_name=params.get("operationName"),
                allowed_operation_types=allowed,
                operation_extensions=params.get("extensions"),
            )
        except InvalidOperationTypeError as exc:
            raise MethodNotAllowed("mutations are sent with POST, never GET", allow="POST") from exc
        except CannotGetOperationTypeError as exc:
            raise BadRequest(exc.as_http_error_reason()) from exc
        except MissingQueryError as exc:
            raise BadRequest("the request has no `query` (or `documentId`)") from exc
        headers = []
        if runtime.settings.audit_disabled_for_benchmark:
            headers.append(("x-akson-audit", "disabled-for-benchmark"))
            context.audit.records.clear()
        else:
            try:
                await context.audit.flush(runtime.audit_writer)
            except Exception as exc:
                log.error("audit write failed; withholding the response data: %s", type(exc).__name__)
                raise AuditUnavailable(
                    "the access could not be recorded in the audit log, so no data is returned"
                ) from exc
        if context.admitted is not None and context.admitted.verdict is not None:
            headers += context.admitted.verdict.headers()
        refusal = _refusal(result)
        if refusal is not None:
            answer = self.error_answer(refusal)
            answer.headers = headers + answer.headers
            return answer
        request_error = _is_request_error(result)
        payload: dict[str, Any] = {} if request_error else {"data": result.data}
        if result.errors:
            payload["errors"] = [graphql_error_payload(e) for e in result.errors]
        extensions = params.get("extensions") or {}
        if extensions.get("cost") and context.admitted is not None:
            payload["extensions"] = {"cost": {"requested": context.admitted.cost, "limit": context.admitted.cost_limit}}
        if request_error:
            return Answer(400 if media == GRAPHQL_RESPONSE else 200, payload, headers)
        if result.data is None and any(
            as_client_error(e.original_error) is None for e in result.errors or [] if e.original_error
        ):
            return Answer(500, payload, headers)
        return Answer(200, payload, headers)

    @staticmethod
    async def _audit_abandoned(runtime: Runtime, context: Context, reason: str) -> None:
        """Record a request stopped before its answer: the decisions it made, and that it was stopped."""
        context.audit.abandoned(reason)
        try:
            await asyncio.shield(context.audit.flush(runtime.audit_writer))
        except Exception as exc:
            log.error("could not audit an abandoned request: %s", type(exc).__name__)


async def _disconnected(receive: Receive) -> None:
    """Returns when the client closes the connection (after the body was read)."""
    while (await receive())["type"] != "http.disconnect":
        pass
