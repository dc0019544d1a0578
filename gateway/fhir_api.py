"""FHIR R4 REST at `/fhir/R4`: another door onto the same store, policies and audit as GraphQL.

The path of a request: HTTP -> authentication (the same tokens and SMART scopes) -> `fhir_endpoint` (the
principal's context, admission by the same budgets, the deadline) -> the store (read by id and list
filtered inside SQL by the query plan, audited as GraphQL's reads are) -> FHIR JSON from the kinds' maps
(gateway/fhir_resources.py) -> audit flush -> response. Errors are OperationOutcomes with the same codes and
reasons as GraphQL's `extensions`.

Served: `metadata` (public), read, vread, instance history, search (GET, or POST `_search`), the
lab-result transaction (`POST /fhir/R4`, gateway/fhir_transaction.py), and Bulk Data export
(gateway/bulk_export.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import deadline
from gateway.admission import admit
from gateway.auth import PRINCIPAL_SCOPE_KEY, AuthenticationMiddleware, challenge
from gateway.context import Context
from gateway.declare import Many, ResourceKind
from gateway.errors import (
    AksonError,
    AuditUnavailable,
    BadRequest,
    BadUserInput,
    DeadlineExceeded,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    Unauthenticated,
    as_client_error,
)
from gateway.fhir_map import Results
from gateway.fhir_resources import FHIR_KINDS, fhir_map, render
from gateway.fhir_search import list_args, search_params
from gateway.graphql_http import read_typed_body
from gateway.resources import KINDS
from gateway.runtime import runtime_of
from gateway.store import ListArgs, Row, Store, encode_cursor

FHIR_JSON = "application/fhir+json"
BASE_PATH = "/fhir/R4"
FHIR_VERSION = "4.0.1"
log = logging.getLogger(__name__)

# FHIR's issue type for each of our error codes (OperationOutcome.issue.code).
_ISSUE_TYPE = {
    "UNAUTHENTICATED": "login",
    "FORBIDDEN": "forbidden",
    "NOT_FOUND": "not-found",
    "BAD_USER_INPUT": "invalid",
    "BAD_REQUEST": "invalid",
    "CONFLICT": "conflict",
    "IDEMPOTENCY_KEY_REUSED": "conflict",
    "RATE_LIMITED": "throttled",
    "COST_LIMIT_EXCEEDED": "too-costly",
    "COST_BUDGET_EXHAUSTED": "throttled",
    "DEADLINE_EXCEEDED": "timeout",
    "SERVICE_UNAVAILABLE": "transient",
    "AUDIT_UNAVAILABLE": "transient",
    "NOT_ACCEPTABLE": "not-supported",
    "UNSUPPORTED_MEDIA_TYPE": "not-supported",
    "METHOD_NOT_ALLOWED": "not-supported",
    "PAYLOAD_TOO_LARGE": "too-long",
}
ERROR_CODES = "urn:akson:error-code"
REASONS = "urn:akson:reason"


def outcome(error: AksonError) -> dict[str, Any]:
    """An error as an OperationOutcome: FHIR's issue type, and our code and reason as codings of the details
    (the same as GraphQL's `extensions.code` and `extensions.reason`)."""
    codings = [{"system": ERROR_CODES, "code": error.extensions["code"]}]
    reason = error.extensions.get("reason")
    if reason:
        codings.append({"system": REASONS, "code": str(reason)})
    issue: dict[str, Any] = {
        "severity": "error",
        "code": _ISSUE_TYPE.get(error.extensions["code"], "exception"),
        "details": {"coding": codings, "text": error.message},
        "diagnostics": error.message,
    }
    argument = error.extensions.get("argument")
    if argument:
        issue["expression"] = [str(argument)]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def fhir_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A FHIR JSON answer; never cached (any of them may carry patient data)."""
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=f"{FHIR_JSON}; charset=utf-8",
        headers={"cache-control": "no-store", **(headers or {})},
    )


def error_response(error: AksonError) -> Response:
    """An error's OperationOutcome with its HTTP status (and Retry-After, when it has one)."""
    headers = {}
    retry = error.extensions.get("retryAfter")
    if retry is not None:
        headers["retry-after"] = str(retry)
    return fhir_response(outcome(error), error.http_status, headers)


async def send_outcome(send: Send, error: AksonError, scheme: str | None = None) -> None:
    """Authentication's refusal at the FHIR door, as an OperationOutcome (with the same challenge)."""
    response = error_response(error)
    if isinstance(error, Unauthenticated):
        response.headers["www-authenticate"] = challenge(error, scheme)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> dict[str, Any]:  # pragma: no cover - a response never reads
    return {"type": "http.disconnect"}


_ACCEPTED = {FHIR_JSON, "application/json", "*/*", "application/*", "json", "application/fhir+ndjson", "ndjson"}


def check_accept(request: Request) -> None:
    """FHIR JSON is what this server speaks: `_format` and Accept may ask for it, or for anything."""
    wanted = request.query_params.get("_format") or request.headers.get("accept") or "*/*"
    if not any(media.split(";")[0].strip() in _ACCEPTED for media in wanted.split(",")):
        raise NotAcceptable(f"this server answers in {FHIR_JSON}; the request accepts neither it nor JSON")


def public_base(request: Request) -> str:
    """The base URL of this FHIR server, as clients reach it: the public URL (the request's own address only
    in demo mode, where the gateway may listen on any port)."""
    settings = runtime_of(request.scope).settings
    base = settings.public_url or str(request.base_url).rstrip("/")
    return f"{base}{BASE_PATH}"


Handler = Callable[[Request, Context], Awaitable[Response]]


def fhir_endpoint(cost: Callable[[Request], int]) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """A FHIR interaction on the request path: the principal's context, admission by the request's `cost`,
    the deadline, the audit flushed before the answer, and every error as an OperationOutcome."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            runtime = runtime_of(request.scope)
            settings = runtime.settings
            context = Context.build(runtime, request, request.scope[PRINCIPAL_SCOPE_KEY])
            try:
                check_accept(request)
                await context.ensure_current_principal()
                await admit(context, cost(request), lambda principal: bool(principal.emergency_patient_ids))
                deadline.start(settings.request_deadline_seconds)
                try:
                    response = await asyncio.wait_for(handler(request, context), settings.request_deadline_seconds)
                except TimeoutError as exc:
                    context.audit.abandoned(DeadlineExceeded.code)
                    raise DeadlineExceeded.after(settings.request_deadline_seconds) from exc
            except Exception as exc:
                error = as_client_error(exc)
                if error is None:
                    log.exception("unexpected error in a FHIR request")
                    error = AksonError("Unexpected error; it has been logged.")
                response = error_response(error)
            try:
                await context.audit.flush(runtime.audit_writer)
            except Exception as exc:
                log.error("audit write failed; withholding the FHIR response: %s", type(exc).__name__)
                return error_response(
                    AuditUnavailable("the access could not be recorded in the audit log, so no data is returned")
                )
            return response

        return endpoint

    return wrap


def kind_of(request: Request) -> ResourceKind:
    """The kind a request's `{type}` names, or 404 for a type this server does not have."""
    name = request.path_params["type"]
    kind = FHIR_KINDS.get(name)
    if kind is None:
        raise NotFound(f"this server has no resource type {name!r}")
    return kind


async def resources(store: Store, kind: ResourceKind, rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Rows of one kind as FHIR resources: list fields shown as references hold only the children the caller
    may read (one statement for all rows), and fields with a permission of their own are withheld from those
    who lack it (one decision for all rows)."""
    if not rows:
        return []
    ids = list(dict.fromkeys(row["id"] for row in rows))
    children: dict[str, dict[str, list[str]]] = {}
    spec = fhir_map(kind)
    for name, element in spec.elements:
        item = kind.field(name)
        if isinstance(element, Results) and isinstance(item, Many):
            pages = await store.pages_by_parent(
                KINDS[item.target], item.parent_column, ids, ListArgs(first=store.max_page_size)
            )
            for rid, page in zip(ids, pages, strict=True):
                children.setdefault(str(rid), {})[name] = [str(r["id"]) for _, r in page.items]
    withheld: dict[str, set[str]] = {}
    for item in kind.fields:
        permission = getattr(item, "permission", None)
        if permission and any(n == item.name for n, _ in spec.elements):
            names = [str(i) for i in ids]
            for rid, ok in zip(names, await store.permitted(kind, permission, names), strict=True):
                if ok is not True:
                    withheld.setdefault(rid, set()).add(item.name)
    return [
        render(kind, row, children=children.get(str(row["id"])), withheld=frozenset(withheld.get(str(row["id"]), ())))
        for row in rows
    ]


async def _one(context: Context, kind: ResourceKind, rid: str) -> Row:
    [found] = await context.store.by_ids(kind, [rid])
    if isinstance(found, Exception):
        raise found
    return found


async def _form(request: Request) -> list[tuple[str, str]]:
    """A POST search's parameters, from its `application/x-www-form-urlencoded` body."""
    settings = runtime_of(request.scope).settings
    form = "application/x-www-form-urlencoded"
    body = await read_typed_body(
        request.receive,
        request.headers,
        (form,),
        settings.max_body_bytes,
        f"a POST search sends its parameters as {form}",
    )
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("the search parameters are not a valid form body") from exc


def _count_of(request: Request, raw: str | None) -> int:
    settings = runtime_of(request.scope).settings
    if raw is None:
        return min(settings.fhir_page_size, settings.max_page_size)
    if not (raw.isascii() and raw.isdecimal()) or not 1 <= int(raw) <= settings.max_page_size:
        raise BadUserInput(f"_count must be a whole number from 1 to {settings.max_page_size}", argument="_count")
    return int(raw)


def _search_cost(request: Request) -> int:
    if request.method == "POST":
        return 1 + runtime_of(request.scope).settings.max_page_size
    try:
        return 1 + _count_of(request, request.query_params.get("_count"))
    except BadUserInput:
        return 1


@fhir_endpoint(cost=lambda request: 1)
async def read(request: Request, context: Context) -> Response:
    """`GET /{type}/{id}`: one resource, decided by the PDP as GraphQL's items are (403 with the reason for a
    hidden one and for a missing one alike)."""
    kind = kind_of(request)
    row = await _one(context, kind, request.path_params["id"])
    [resource] = await resources(context.store, kind, [row])
    return fhir_response(resource, headers={"etag": f'W/"{row["version"]}"'})


@fhir_endpoint(cost=_search_cost)
async def search(request: Request, context: Context) -> Response:
    """`GET /{type}?...` and `POST /{type}/_search` (the parameters as a form body): a page of the resources
    the caller may read, filtered inside SQL by the query plan, with a `next` link while more follow."""
    kind = kind_of(request)
    query = list(request.query_params.multi_items())
    if request.method == "POST":
        query += await _form(request)
    args = list_args(kind, query, _count_of(request, dict(query).get("_count")))
    page = await context.store.page(kind, args)
    rows = [row for _, row in page.items]
    base = public_base(request)
    own = [(k, v) for k, v in query if k != "_cursor"]
    links = [{"relation": "self", "url": f"{base}/{fhir_map(kind).resource}?{urlencode(query)}"}]
    if page.has_next_page and page.items:
        after = encode_cursor(kind, page.items[-1][1])
        links.append(
            {"relation": "next", "url": f"{base}/{fhir_map(kind).resource}?{urlencode([*own, ('_cursor', after)])}"}
        )
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [
            {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in await resources(context.store, kind, rows)
        ],
    }
    return fhir_response(bundle)


@fhir_endpoint(cost=lambda request: 1 + runtime_of(request.scope).settings.max_page_size)
async def history(request: Request, context: Context) -> Response:
    """`GET /{type}/{id}/_history[/{vid}]`: the versions the journal's writes kept, newest first (or one),
    once the current resource may be read."""
    kind = kind_of(request)
    rid = request.path_params["id"]
    current = await _one(context, kind, rid)
    vid = request.path_params.get("vid")
    if vid is not None:
        if not (vid.isascii() and vid.isdecimal()) or not 1 <= int(vid) <= int(current["version"]):
            raise NotFound(f"{fhir_map(kind).resource}/{rid} has no version {vid}")
        rows, _ = await context.store.versions(kind, str(current["id"]), 1, int(vid) + 1)
        [resource] = await resources(context.store, kind, rows)
        return fhir_response(resource, headers={"etag": f'W/"{vid}"'})
    rows, more = await context.store.versions(kind, str(current["id"]), context.store.max_page_size, None)
    base = public_base(request)
    name = fhir_map(kind).resource
    entries = []
    for row, resource in zip(rows, await resources(context.store, kind, rows), strict=True):
        first = int(row["version"]) == 1
        entries.append(
            {
                "fullUrl": f"{base}/{name}/{rid}",
                "resource": resource,
                "request": {"method": "POST" if first else "PUT", "url": name if first else f"{name}/{rid}"},
                "response": {"status": "201" if first else "200", "lastModified": resource["meta"]["lastUpdated"]},
            }
        )
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history", "entry": entries}
    if not more:
        bundle["total"] = len(entries)
    return fhir_response(bundle)


async def metadata(request: Request) -> Response:
    """`GET /metadata`: what this server does, derived from the same declarations that serve it (public, as
    SMART clients read it before they have a token)."""
    settings = runtime_of(request.scope).settings
    base = public_base(request)
    kinds = []
    for name, kind in sorted(FHIR_KINDS.items()):
        kinds.append(
            {
                "type": name,
                "documentation": kind.description,
                "interaction": [{"code": c} for c in ("read", "vread", "history-instance", "search-type")],
                "versioning": "versioned",
                "readHistory": True,
                "searchParam": [
                    {"name": p.name, "type": p.type, "documentation": p.documentation}
                    for p in search_params(kind).values()
                ],
                **({"operation": [_export("patient-export")]} if name == "Patient" else {}),
            }
        )
    kinds.append(
        {
            "type": "Group",
            "documentation": "A municipality or a unit, as the set of patients a Bulk Data export reads.",
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [{"name": "name", "type": "string", "documentation": "Part of the name."}],
            "operation": [_export("group-export")],
        }
    )
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": _STARTED,
        "publisher": "Akson Gateway",
        "kind": "instance",
        "software": {"name": "Akson Gateway"},
        "implementation": {"description": "The shared municipal journal's FHIR door", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Every read, search and export is decided by the journal's access policy and "
                "audited; writes take transaction Bundles of lab results.",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "description": f"Bearer (or DPoP) tokens of {settings.issuer}, with SMART v2 scopes.",
                },
                "resource": kinds,
                "interaction": [{"code": "transaction"}],
                "operation": [_export("export")],
            }
        ],
    }
    return fhir_response(statement)


_STARTED = datetime.now(UTC).isoformat()


def _export(definition: str) -> dict[str, str]:
    return {"name": "export", "definition": f"http://hl7.org/fhir/uv/bulkdata/OperationDefinition/{definition}"}


def not_found(request: Request) -> Response:
    """Any other path under /fhir/R4."""
    return error_response(NotFound(f"this FHIR server has no {request.url.path}"))


class FhirDoor:
    """`/fhir/R4`: `metadata` open to all, everything else behind authentication. Its routes carry the whole
    path (a mounted router would answer `POST /fhir/R4`, the transaction endpoint, with a redirect)."""

    def __init__(self, routes: list[Route], public_url: str) -> None:
        self._public = Router(routes=[Route(f"{BASE_PATH}/metadata", metadata)])
        self._private: ASGIApp = AuthenticationMiddleware(
            Router(routes=routes, default=_default),
            lambda scope: runtime_of(scope).authenticator,
            public_url,
            on_error=send_outcome,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if scope["type"] == "http" and scope["path"].rstrip("/") == f"{BASE_PATH}/metadata":
                await self._public(scope, receive, send)
            else:
                await self._private(scope, receive, send)
        except HTTPException as exc:
            # The router's own refusals (a method a route does not take) as OperationOutcomes.
            allow = (exc.headers or {}).get("Allow", "")
            if exc.status_code != 405:
                raise
            response = error_response(MethodNotAllowed(f"this FHIR endpoint takes {allow}", allow=allow))
            response.headers["allow"] = allow
            await response(scope, receive, send)


async def _default(scope: Scope, receive: Receive, send: Send) -> None:
    await not_found(Request(scope, receive))(scope, receive, send)


def read_routes() -> list[Route]:
    """The read side's routes (the transaction and export routes join them in gateway/app.py)."""
    return [
        Route(f"{BASE_PATH}/{{type}}/_search", search, methods=["POST"]),
        Route(f"{BASE_PATH}/{{type}}/{{id}}/_history/{{vid}}", history),
        Route(f"{BASE_PATH}/{{type}}/{{id}}/_history", history),
        Route(f"{BASE_PATH}/{{type}}/{{id}}", read),
        Route(f"{BASE_PATH}/{{type}}", search),
    ]
