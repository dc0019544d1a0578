"""Admission: whether a parsed, validated operation may run now, decided before it touches any data.

In order: the operation's static cost against the app's budget for one request (gateway/cost.py); then,
in one statement, the app's and the person's requests per minute and the app's cost per minute
(gateway/rate_limits.py). Once admitted, a third-party app's reads share the process's connections with
every other app's (gateway/db.py `AppShares`).

Emergency access is never refused here for rate: a person opening a record in an emergency, or reading
under an emergency grant, is counted by no budget. First-party apps (the demo app behind GraphiQL, and
those in AKSON_FIRST_PARTY_APPS) are the municipality's own: they have no per-app budgets, and their
people keep their own budgets of requests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from graphql import DocumentNode, FieldNode, OperationDefinitionNode, OperationType
from strawberry.extensions import SchemaExtension

from gateway.auth import Principal
from gateway.cost import operation_cost
from gateway.errors import CostBudgetExhausted, CostLimitExceeded, RateLimited
from gateway.rate_limits import Budget, Verdict

if TYPE_CHECKING:
    from gateway.context import Context

EMERGENCY_MUTATIONS = frozenset({"requestEmergencyAccess"})


@dataclass
class Admitted:
    """What admission found for one request: its cost and how its budgets stand (for response headers)."""

    cost: int
    cost_limit: int
    verdict: Verdict | None = None


def is_emergency(principal: Principal, document: DocumentNode) -> bool:
    """A request made under an emergency grant, or one that asks for emergency access."""
    if principal.emergency_patient_ids:
        return True
    return any(
        isinstance(d, OperationDefinitionNode)
        and d.operation == OperationType.MUTATION
        and any(isinstance(f, FieldNode) and f.name.value in EMERGENCY_MUTATIONS for f in d.selection_set.selections)
        for d in document.definitions
    )


def budgets(
    principal: Principal, requests_per_minute: int | None, user_per_minute: int, cost: int, cost_per_minute: int
) -> list[Budget]:
    """The budgets one request takes from: its app's requests and cost (none for a first-party app, whose
    `requests_per_minute` is None), and its person's requests."""
    taken = []
    if requests_per_minute is not None:
        taken += [
            Budget("app", f"app:{principal.client_id}", 1, requests_per_minute),
            Budget("cost", f"cost:{principal.client_id}", cost, cost_per_minute),
        ]
    if principal.kind != "service":
        taken.append(Budget("user", f"user:{principal.ref}", 1, user_per_minute))
    return taken


class Admission(SchemaExtension):
    """The admission step of the request path, between validation and execution (HTTP requests only;
    live connections are limited by their own windows, gateway/live.py)."""

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context: Context | None = execution.context
        document = execution.graphql_document
        if context is None or context.live is not None or document is None:
            yield
            return
        cost = operation_cost(
            execution.schema._schema,
            document,
            execution.operation_name,
            execution.variables,
            context.runtime.settings.max_page_size,
        )
        await admit(context, cost, lambda principal: is_emergency(principal, document))
        yield


async def admit(context: Context, cost: int, emergency: Callable[[Principal], bool]) -> None:
    """Admit a request of `cost` for the context's principal, or raise the refusal: the app's budget for
    one request, then its budgets per minute and the person's. `emergency` says whether a principal's
    request is an emergency, which no budget refuses. Every door (GraphQL, FHIR) is admitted here."""
    runtime, principal = context.runtime, context.principal
    settings = runtime.settings
    limits = await runtime.app_status.limits(principal.client_id)
    per_request = limits.max_cost_per_request or settings.app_max_cost_per_request
    per_minute = limits.cost_per_minute or settings.app_cost_per_minute
    context.admitted = Admitted(cost, per_request)
    first_party = settings.is_first_party(principal.client_id)
    ceiling = min(per_request, per_minute)
    if not first_party and cost > ceiling:
        raise CostLimitExceeded(
            f"the operation costs {cost}, more than the {ceiling} this app may spend on one request: ask for "
            "fewer items (`first`) or fewer nested lists",
            cost=cost,
            limit=ceiling,
        )
    # An emergency is never refused for rate; a kept principal holding a grant is asked again first (it
    # may have ended since).
    if emergency(context.principal) and context.principal.kept:
        await context.ensure_current_principal()
    if emergency(context.principal):
        return
    verdict = await runtime.rate_limiter.take(
        budgets(
            principal,
            None if first_party else (limits.requests_per_minute or settings.app_requests_per_minute),
            settings.user_requests_per_minute,
            cost,
            per_minute,
        )
    )
    context.admitted.verdict = verdict
    if not verdict.allowed and principal.kept:
        # A kept principal may not know of an emergency grant given since: the refusal is rare, so it asks
        # the journal before refusing (and nothing was taken from the budgets).
        await context.ensure_current_principal()
        if emergency(context.principal):
            return
    if verdict.allowed:
        return
    exhausted = [s for s in verdict.standings if s.retry_after is not None and s.retry_after > 0]
    names = {s.budget.name for s in exhausted}
    if names == {"cost"}:
        raise CostBudgetExhausted(
            f"this app has spent its cost budget of {per_minute} a minute; the operation (cost {cost}) "
            f"fits again in {verdict.retry_after} s",
            cost=cost,
            limit=per_minute,
            retryAfter=verdict.retry_after,
        )
    spent = ", ".join(sorted(names)) or "app"
    raise RateLimited(
        f"too many requests ({spent} budget); try again in {verdict.retry_after} s",
        retryAfter=verdict.retry_after,
    )
