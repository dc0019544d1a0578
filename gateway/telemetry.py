"""OpenTelemetry: one trace per request, with spans for HTTP, the GraphQL operation, each Cerbos call
and each SQL statement. Exporter by `OTEL_TRACES_EXPORTER`: none, console or otlp.

Patient data stays out of spans: SQL spans carry statement text with `$n` placeholders but never the
parameters; the HTTP span never records the query string or headers; the GraphQL span carries the
operation type and name only. Strawberry's own OpenTelemetryExtension records the query text and
resolver arguments (a national id, say), which is why the operation span is written here.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context as OtelContext
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

tracer = trace.get_tracer("akson.graphql")
_configured = False


def setup_tracing(exporter: str) -> None:
    """Install the tracer provider and SQL instrumentation once per process."""
    global _configured
    if _configured:
        return
    _configured = True
    provider = TracerProvider(resource=Resource.create({"service.name": "akson-gateway"}))
    if exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    provider.add_span_processor(WorkCounter())
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor(capture_parameters=False).instrument()  # type: ignore[no-untyped-call]


@dataclass
class RequestWork:
    """How many SQL statements and Cerbos calls one request cost: the design promises both grow with
    query depth and resource kinds, never with rows, and these counts let anyone check it."""

    sql_statements: int = 0
    cerbos_calls: int = 0


_current_work: ContextVar[RequestWork | None] = ContextVar("akson_request_work", default=None)
SQL_HEADER = "x-akson-sql-statements"
CERBOS_HEADER = "x-akson-cerbos-calls"


class WorkCounter(SpanProcessor):
    """Counts the request's SQL and Cerbos spans as they start; the spans are there anyway, so
    counting them costs nothing extra and cannot drift from what the traces show."""

    def on_start(self, span: Span, parent_context: OtelContext | None = None) -> None:
        work = _current_work.get()
        if work is None:
            return
        if span.name.startswith("cerbos."):
            work.cerbos_calls += 1
        elif span.attributes and span.attributes.get("db.system") == "postgresql":
            work.sql_statements += 1

    def on_end(self, span: ReadableSpan) -> None:
        return None


def counted(app: ASGIApp) -> ASGIApp:
    """Wraps the app so that every HTTP response says what it cost in SQL statements and Cerbos calls."""

    async def count(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        work = RequestWork()
        token = _current_work.set(work)

        async def send_with_counts(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers[SQL_HEADER] = str(work.sql_statements)
                headers[CERBOS_HEADER] = str(work.cerbos_calls)
            await send(message)

        try:
            await app(scope, receive, send_with_counts)
        finally:
            _current_work.reset(token)

    return count


def _scrub_http_span(span: Any, scope: dict[str, Any]) -> None:
    if span is not None and span.is_recording():
        path = scope.get("path", "")
        for key in ("http.url", "url.full", "http.target"):
            span.set_attribute(key, path)
        span.set_attribute("url.query", "")


def traced(app: ASGIApp) -> ASGIApp:
    """The HTTP span around the whole app, with the URL reduced to its path, and the work counts."""
    return OpenTelemetryMiddleware(
        counted(app), server_request_hook=_scrub_http_span, exclude_spans=["receive", "send"]
    )


class OperationSpan(SchemaExtension):
    """A span per GraphQL operation that child spans (Cerbos, SQL) nest under."""

    def on_operation(self) -> Generator[None, None, None]:
        with tracer.start_as_current_span("graphql.operation") as span:
            yield
            context = self.execution_context
            operation = context.operation_type.value if context.graphql_document is not None else "unparsed"
            span.set_attribute("graphql.operation.type", operation)
            if context.operation_name:
                span.set_attribute("graphql.operation.name", context.operation_name)
                span.update_name(f"graphql.{operation} {context.operation_name}")
            if context.result is not None and context.result.errors:
                span.set_attribute("graphql.error_count", len(context.result.errors))


class TraceIdFilter(logging.Filter):
    """Adds the current trace id to log records, so a log line leads to its trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        record.trace_id = f"{context.trace_id:032x}" if context.is_valid else "-"
        return True


def setup_logging(level: int = logging.INFO) -> None:
    """Structured-enough logs: time, level, logger, trace id, message."""
    handler = logging.StreamHandler()
    handler.addFilter(TraceIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s trace=%(trace_id)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
