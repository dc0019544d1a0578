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
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
from starlette.types import ASGIApp
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
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor(capture_parameters=False).instrument()


def _scrub_http_span(span: Any, scope: dict[str, Any]) -> None:
    if span is not None and span.is_recording():
        path = scope.get("path", "")
        for key in ("http.url", "url.full", "http.target"):
            span.set_attribute(key, path)
        span.set_attribute("url.query", "")


def traced(app: ASGIApp) -> ASGIApp:
    """The HTTP span around the whole app, with the URL reduced to its path."""
    return OpenTelemetryMiddleware(app, server_request_hook=_scrub_http_span, exclude_spans=["receive", "send"])


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
