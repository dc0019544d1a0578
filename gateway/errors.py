"""The error hierarchy: each error knows its GraphQL `extensions.code` and its HTTP status.

Anything raised that is not an `AksonError` is a bug: clients see a masked INTERNAL_SERVER_ERROR and
the details go to the log with the trace id, never into the response.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import asyncpg
import grpc
from graphql import GraphQLError, GraphQLSyntaxError

log = logging.getLogger(__name__)


class AksonError(Exception):
    """An error whose message is written for the client and safe to show."""

    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": self.code, **extensions}


class Unauthenticated(AksonError):
    """No usable credentials: the caller must present a valid bearer token. `challenge` is the scheme of
    the WWW-Authenticate challenge and `oauth_error` its error code (RFC 6750, RFC 9449)."""

    code = "UNAUTHENTICATED"
    http_status = 401
    challenge: ClassVar[str] = "Bearer"
    oauth_error: ClassVar[str] = "invalid_token"


class DpopTokenRejected(Unauthenticated):
    """A DPoP-bound token presented the wrong way, or the DPoP scheme with an unbound token."""

    challenge = "DPoP"


class DpopProofRejected(DpopTokenRejected):
    """The DPoP proof is missing, malformed, replayed or not for this request and key."""

    oauth_error = "invalid_dpop_proof"


class Forbidden(AksonError):
    """Policy denied the access; `reason` is the stable reason code a policy admin can look up."""

    code = "FORBIDDEN"
    http_status = 403

    def __init__(self, message: str, *, reason: str, **extensions: Any) -> None:
        super().__init__(message, reason=reason, **extensions)
        self.reason = reason


class NotFound(AksonError):
    """Nothing to return, and policy would have allowed it: saying so reveals nothing hidden."""

    code = "NOT_FOUND"
    http_status = 404


class BadUserInput(AksonError):
    """The request is well-formed GraphQL but an argument value is not acceptable."""

    code = "BAD_USER_INPUT"
    http_status = 400


class Conflict(AksonError):
    """The resource changed since the version the client last read: read it again, then decide."""

    code = "CONFLICT"
    http_status = 409


class IdempotencyKeyReused(AksonError):
    """An idempotency key came back with another request than the one it was first used for."""

    code = "IDEMPOTENCY_KEY_REUSED"
    http_status = 422


class BadRequest(AksonError):
    """The HTTP request itself is unusable (body not JSON, no query, wrong method)."""

    code = "BAD_REQUEST"
    http_status = 400


class RequestRefused(AksonError):
    """The request ends before execution: its response has no `data` entry and the error's HTTP status."""

    code = "BAD_REQUEST"
    http_status = 400


class BatchNotSupported(RequestRefused):
    """A JSON array of operations: each operation must be its own request (so each is limited and audited)."""

    code = "BATCH_NOT_SUPPORTED"


class PayloadTooLarge(RequestRefused):
    """The body, or its `variables`, is larger than the gateway accepts."""

    code = "PAYLOAD_TOO_LARGE"
    http_status = 413


class UnsupportedMediaType(RequestRefused):
    """A POST body that is not `application/json`."""

    code = "UNSUPPORTED_MEDIA_TYPE"
    http_status = 415


class NotAcceptable(RequestRefused):
    """The client accepts neither `application/graphql-response+json` nor `application/json`."""

    code = "NOT_ACCEPTABLE"
    http_status = 406


class MethodNotAllowed(RequestRefused):
    """Anything but GET and POST, or a mutation sent with GET (`allow` is the Allow header's value)."""

    code = "METHOD_NOT_ALLOWED"
    http_status = 405

    def __init__(self, message: str, *, allow: str) -> None:
        super().__init__(message)
        self.allow = allow


class TrustedDocumentNotFound(RequestRefused):
    """The request names a document its app has not registered."""

    code = "TRUSTED_DOCUMENT_NOT_FOUND"


class PersistedQueryNotFound(TrustedDocumentNotFound):
    """Apollo's code for the same refusal, so that Apollo clients behave as they were built to."""

    code = "PERSISTED_QUERY_NOT_FOUND"


class TrustedDocumentRequired(RequestRefused):
    """A third-party app sent query text where only registered documents may run."""

    code = "TRUSTED_DOCUMENT_REQUIRED"


class CostLimitExceeded(RequestRefused):
    """The operation's static cost is over the app's budget for one request: it never fits; ask for less."""

    code = "COST_LIMIT_EXCEEDED"


class CostBudgetExhausted(CostLimitExceeded):
    """The app spent its cost budget for the minute: the same operation fits after `Retry-After`."""

    http_status = 429


class RateLimited(RequestRefused):
    """The app or the person used up a budget of requests per minute; try again after `Retry-After`."""

    code = "RATE_LIMITED"
    http_status = 429


class DeadlineExceeded(RequestRefused):
    """The request took longer than the gateway allows; its statements were cancelled."""

    code = "DEADLINE_EXCEEDED"
    http_status = 504

    @classmethod
    def after(cls, seconds: float) -> DeadlineExceeded:
        """The refusal of a request stopped at its deadline of `seconds`, as every door words it."""
        return cls(f"the request took longer than {seconds:g} s and was stopped; ask for less", deadlineSeconds=seconds)


class ServiceUnavailable(AksonError):
    """A component the gateway needs (PostgreSQL, Cerbos, the audit log) is not answering: fail closed."""

    code = "SERVICE_UNAVAILABLE"
    http_status = 503


class AuditUnavailable(ServiceUnavailable):
    """The audit record could not be written, so no patient data may leave."""

    code = "AUDIT_UNAVAILABLE"


_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
)


# What the database refuses about the data itself: the input broke a rule of the journal that the checks
# before the write did not catch. Refused, nothing written, and logged so that the missing check is found.
_REFUSED_INPUT = (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError)


def pdp_error(exc: grpc.aio.AioRpcError) -> AksonError:
    """What a failed call to the Cerbos PDP means for the client: a request it calls invalid is bad input
    (a value of the request, such as an empty id, that no policy can be asked about); anything else is
    an outage of the PDP, and the request fails closed."""
    if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
        log.warning("the PDP refused a request as invalid: %s", exc.details())
        return BadUserInput("a value in the request cannot be checked against the access rules (an empty id?)")
    log.error("the PDP call failed: %s", exc.code())
    return ServiceUnavailable("the authorization service is unavailable; no data was returned")


def as_client_error(exc: BaseException) -> AksonError | None:
    """The typed error a client should see for `exc`, or None when it is a bug.

    The one table from foreign errors to ours: a database that cannot be reached is an outage, not a
    bug (ServiceUnavailable); data the database refuses is bad input (BadUserInput, naming the rule); the
    PDP's errors as `pdp_error` says.
    """
    if isinstance(exc, AksonError):
        return exc
    if isinstance(exc, grpc.aio.AioRpcError):
        return pdp_error(exc)
    if isinstance(exc, _UNREACHABLE):
        return ServiceUnavailable("the journal database is unavailable; no data was returned")
    if isinstance(exc, _REFUSED_INPUT):
        rule = getattr(exc, "constraint_name", None)
        log.warning("the database refused input (%s: %s)", type(exc).__name__, rule or "no constraint")
        return BadUserInput(
            f"the input breaks a rule of the journal ({rule})"
            if rule
            else "the input holds a value the journal cannot keep"
        )
    return None


def graphql_error_payload(error: GraphQLError) -> dict[str, Any]:
    """Turn an execution error into what the client sees: typed, and masked unless it is ours.

    Syntax, validation and variable-coercion errors come from graphql-core and are safe to show.
    """
    original = error.original_error
    if original is None or (isinstance(original, GraphQLError) and not isinstance(original, AksonError)):
        code = "GRAPHQL_PARSE_FAILED" if isinstance(error, GraphQLSyntaxError) else "GRAPHQL_VALIDATION_FAILED"
        formatted = dict(error.formatted)
        formatted["extensions"] = {"code": code, **(error.extensions or {})}
        return formatted
    client_error = as_client_error(original)
    if client_error is not None:
        payload: dict[str, Any] = {"message": client_error.message, "extensions": dict(client_error.extensions)}
    else:
        payload = {
            "message": "Unexpected error; it has been logged.",
            "extensions": {"code": AksonError.code},
        }
    if error.locations:
        payload["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        payload["path"] = list(error.path)
    return payload


def http_error_body(error: AksonError) -> dict[str, Any]:
    """The JSON body for an error that ends a request before GraphQL execution."""
    return {"data": None, "errors": [{"message": error.message, "extensions": dict(error.extensions)}]}
