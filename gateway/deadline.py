"""The deadline of the request being served, for the statements it runs.

The HTTP transport sets it when a request starts (gateway/graphql_http.py); a write transaction gives
PostgreSQL what is left of it as `statement_timeout`, so a statement never outlives its request even if
the cancellation the transport sends at the deadline is lost.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

_DEADLINE: ContextVar[float | None] = ContextVar("akson_deadline", default=None)
MINIMUM_MS = 1


def start(seconds: float) -> None:
    """The current request must be answered within `seconds` from now."""
    _DEADLINE.set(time.monotonic() + seconds)


def clear() -> None:
    """Work that outlives the request that started it (an export) runs without its deadline."""
    _DEADLINE.set(None)


def statement_timeout(default_ms: int) -> str:
    """What is left of the current request's deadline, as a `statement_timeout` value (`default_ms`
    outside a request)."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return f"{default_ms}ms"
    return f"{max(MINIMUM_MS, int((deadline - time.monotonic()) * 1000))}ms"
