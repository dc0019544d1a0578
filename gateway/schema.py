"""The GraphQL schema: root types from `resolvers/`, plus the cross-cutting extensions (tracing,
limits on depth, size and aliases). `schema.graphql` is this schema printed; a test fails on drift."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError, NoSchemaIntrospectionCustomRule
from strawberry import relay
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
)
from strawberry.types import ExecutionContext

from gateway import resources as K
from gateway.admission import Admission
from gateway.config import Settings
from gateway.document_checks import CheckedValidation
from gateway.errors import as_client_error
from gateway.json_sql import ITEM_OF, LIST_OF
from gateway.telemetry import OperationSpan
from gateway.whole_reads import WholeSelectionReads
from resolvers.access import AccessMutations, EmergencyGrant, NoteMutations, emergency_grants
from resolvers.apps import App, AppMutations, app, apps
from resolvers.audit_log import (
    AuditEvent,
    DecisionExplanation,
    DenialCount,
    ReviewMutations,
    access_log,
    denial_report,
    explain_decision,
)
from resolvers.changes import ChangeConnection, Subscription, changes
from resolvers.common import Connection
from resolvers.patients import (
    JournalLists,
    Municipality,
    Observation,
    Organization,
    Patient,
    Practitioner,
    municipalities,
    node,
    observations,
    organizations,
    patient,
    patients,
    practitioners,
)
from resolvers.reorganization import ReorganizationMutations
from resolvers.webhooks import (
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMutations,
    webhook_deliveries,
    webhook_endpoints,
)
from resolvers.writes import JournalMutations

log = logging.getLogger(__name__)

PARSED_DOCUMENTS = 256


@strawberry.type(description="Read access to the municipal journal. Every field is authorized by policy and audited.")
class Query(JournalLists):  # type: ignore[misc]
    node: relay.Node | None = strawberry.field(
        resolver=node,
        metadata={ITEM_OF: None},
        description="Any resource by its global id. Null with a FORBIDDEN error and its reason when policy does "
        "not allow it; an id that does not exist looks the same as one you may not see.",
    )
    patient: Patient | None = strawberry.field(
        resolver=patient,
        metadata={ITEM_OF: K.PATIENT},
        description="One patient by global id. Null with a FORBIDDEN error and its reason when policy does not "
        "allow it; a patient that does not exist looks the same as one you may not see.",
    )
    patients: Connection[Patient] = strawberry.field(
        resolver=patients,
        metadata={LIST_OF: (K.PATIENT, None)},
        description="The patients you may read, a page at a time, ordered by name. Rows policy hides are "
        "filtered in the database: they never appear in pages, counts or cursors.",
    )
    observations: Connection[Observation] = strawberry.field(
        resolver=observations,
        metadata={LIST_OF: (K.OBSERVATION, None)},
        description="Observations across all the patients you may read, newest first, filtered by code, "
        "category, status and time.",
    )

    municipalities: Connection[Municipality] = strawberry.field(
        resolver=municipalities,
        description="The municipalities, by name, with their units and the policy scope of their local rules; a "
        "merged one names the municipality it became part of.",
    )
    organizations: Connection[Organization] = strawberry.field(
        resolver=organizations,
        description="The units of the services, by name: municipal services, the health trust's departments, "
        "laboratories and radiology, Nav offices and child welfare.",
    )
    practitioners: Connection[Practitioner] = strawberry.field(
        resolver=practitioners,
        description="People working in the services, health personnel and others, by name: find one by HPR "
        "number or by the start of the family name; their roles say where they work, as what and when.",
    )
    emergency_grants: Connection[EmergencyGrant] = strawberry.field(
        resolver=emergency_grants,
        description="Emergency accesses you may see, newest first: to your own record (as a patient), your own "
        "(as a practitioner), or every one (as a reviewer), with `filter: {reviewed: false}` for those pending review.",
    )
    access_log: Connection[AuditEvent] = strawberry.field(
        resolver=access_log,
        description="Who accessed patient data, when, from which unit and app, why, and whether it was an emergency: "
        "your own data as a patient (innsyn i logg), everything as a compliance officer. A time range is required.",
    )
    denial_report: list[DenialCount] = strawberry.field(
        resolver=denial_report,
        description="Denials over a period by app, vendor, kind of data and reason (policy admins, compliance).",
    )
    explain_decision: DecisionExplanation = strawberry.field(
        resolver=explain_decision,
        description="Why a person may or may not take an action on a resource, with the rule and the policy version "
        "(policy admins, compliance officers; audited).",
    )
    apps: list[App] = strawberry.field(
        resolver=apps, description="Registered apps, newest first: your own, or every app for a policy admin."
    )
    app: App | None = strawberry.field(resolver=app, description="One registered app by client id.")
    changes: ChangeConnection = strawberry.field(
        resolver=changes,
        description="The change feed: changes committed after `after`, in commit order, that you may read now "
        "(filtered by the same policies as reads, and audited as reads). Keep `pageInfo.endCursor` and continue "
        "from it to get every change exactly once; subscribe to `changes` to have them pushed.",
    )
    webhook_endpoints: list[WebhookEndpoint] = strawberry.field(
        resolver=webhook_endpoints,
        description="Your backend app's webhook endpoints (every app's, for a policy admin), newest first.",
    )
    webhook_deliveries: Connection[WebhookDelivery] = strawberry.field(
        resolver=webhook_deliveries,
        description="What was delivered to one of your webhook endpoints, newest first: attempts, status, latency.",
    )


@strawberry.type(description="Changes. Every change is authorized by policy and audited like a read.")
class Mutation(
    JournalMutations,  # type: ignore[misc]
    AppMutations,
    AccessMutations,
    NoteMutations,
    ReviewMutations,
    WebhookMutations,
    ReorganizationMutations,
):
    pass


class AksonSchema(strawberry.Schema):
    """Logs only unexpected errors (with stack trace); typed errors are expected outcomes."""

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        for error in errors:
            original = error.original_error
            if original is not None and not isinstance(original, GraphQLError) and as_client_error(original) is None:
                log.error("unexpected error while executing", exc_info=error.original_error)


def build_schema(settings: Settings) -> AksonSchema:
    """The schema with its extensions and the settings' limits; one instance per process."""
    # The limits' validation rules, built once: the validation cache keys on the rules, so rules built anew for
    # every request (as the limiter extensions do) would make every request miss it.
    limit_rules = [
        rule
        for limiter in (
            QueryDepthLimiter(max_depth=settings.graphql_max_depth),
            MaxAliasesLimiter(max_alias_count=settings.graphql_max_aliases),
        )
        for rule in limiter.validation_rules
    ]
    if not settings.introspection:
        limit_rules.append(NoSchemaIntrospectionCustomRule)
    return AksonSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            OperationSpan,
            lambda: ParserCache(maxsize=PARSED_DOCUMENTS),
            lambda: MaxTokensLimiter(max_token_count=settings.graphql_max_tokens),
            lambda: AddValidationRules(limit_rules),
            lambda: CheckedValidation(settings.graphql_max_selections, maxsize=PARSED_DOCUMENTS),
            Admission,
            WholeSelectionReads,
        ],
    )
