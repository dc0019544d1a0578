"""The app registry in GraphQL: vendors register apps, policy admins decide on them."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

import orjson
import strawberry
from strawberry.scalars import JSON

from gateway import resources as K
from gateway.errors import BadUserInput
from gateway.registry import AppLimits, Registration
from gateway.store import Row, parse_global_id
from resolvers.common import FirstArg, Info, to_one
from resolvers.types import TYPES

if TYPE_CHECKING:  # built at import from the declarations; to the type checker it is Any
    Organization: TypeAlias = Any
else:
    Organization = TYPES["Organization"]


@strawberry.enum(description="How an app talks to the API.")
class AppKind(Enum):
    USER_FACING = "user-facing"
    BACKEND_SERVICE = "backend-service"


@strawberry.enum(description="Where an app stands; only approved apps' tokens are accepted.")
class AppStatus(Enum):
    PENDING = "pending"
    APPROVED = "approved"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


@strawberry.type(description="A third-party app registered to call the API.")
class App:
    client_id: str = strawberry.field(description="The OAuth client id its tokens carry.")
    name: str = strawberry.field(description="The app's name, as shown to users and admins.")
    vendor_org_number: str = strawberry.field(description="The vendor's organization number.")
    kind: AppKind = strawberry.field(description="User-facing app or backend service.")
    redirect_uris: list[str] = strawberry.field(description="Where a user-facing app receives authorization codes.")
    jwks_uri: str | None = strawberry.field(description="Where a backend service publishes its keys, if not inline.")
    scopes: list[str] = strawberry.field(description="The SMART scopes the app was registered with.")
    status: AppStatus = strawberry.field(description="Whether its tokens are accepted.")
    status_reason: str | None = strawberry.field(description="Why the last decision was made.")
    acting_unit_id: strawberry.Private[uuid.UUID | None]
    registered_at: datetime = strawberry.field(description="When it was registered.")
    decided_at: datetime | None = strawberry.field(description="When a policy admin last decided on it.")
    requests_per_minute: int | None = strawberry.field(
        description="Requests a minute its approval allows, across every gateway process; null: the gateway's default."
    )
    max_cost_per_request: int | None = strawberry.field(
        description="The most one operation may cost (see the README's Limits); null: the gateway's default."
    )
    cost_per_minute: int | None = strawberry.field(
        description="The cost its operations may add up to in a minute; null: the gateway's default."
    )

    @classmethod
    def from_row(cls, row: Row) -> App:
        return cls(
            client_id=row["client_id"],
            name=row["name"],
            vendor_org_number=row["vendor_org_number"],
            kind=AppKind(row["kind"]),
            redirect_uris=list(row["redirect_uris"]),
            jwks_uri=row["jwks_uri"],
            scopes=list(row["requested_scopes"]),
            status=AppStatus(row["status"]),
            status_reason=row["status_reason"],
            registered_at=row["registered_at"],
            decided_at=row["decided_at"],
            acting_unit_id=row["acting_unit_id"],
            requests_per_minute=row["requests_per_minute"],
            max_cost_per_request=row["max_cost_per_request"],
            cost_per_minute=row["cost_per_minute"],
        )

    @strawberry.field(
        description="The operations the app registered (its trusted documents), newest first: send one with "
        "`documentId` instead of query text."
    )
    async def trusted_documents(self, info: Info) -> list[TrustedDocument]:
        rows = await info.context.registry.trusted_documents(self.client_id)
        return [TrustedDocument.from_row(r) for r in rows]

    @strawberry.field(description="Its registration and every decision on it, oldest first, with who and why.")
    async def history(self, info: Info) -> list[AppDecision]:
        return [AppDecision.from_row(r) for r in await info.context.registry.history(self.client_id)]

    @strawberry.field(
        description="For a backend service: the unit it acts for, named when it was approved (its data-processing "
        "agreement); null when it acts for none."
    )
    async def acting_unit(self, info: Info) -> Organization | None:
        return await to_one(info, K.ORGANIZATION, self.acting_unit_id)


@strawberry.enum(description="What happened to an app.")
class AppAction(Enum):
    REGISTER = "register"
    APPROVE = "approve"
    SUSPEND = "suspend"
    REVOKE = "revoke"


@strawberry.type(description="One entry of an app's history: its registration or a decision on it.")
class AppDecision:
    action: AppAction = strawberry.field(description="Registered, approved, suspended or revoked.")
    reason: str | None = strawberry.field(description="Why, as the policy admin wrote it (none for a registration).")
    decided_by: str | None = strawberry.field(
        description="Who: the id of the person (or service) who did it; shown to policy admins and to that person, "
        "null for others."
    )
    decided_at: datetime = strawberry.field(description="When.")

    @classmethod
    def from_row(cls, row: Row | dict[str, Any]) -> AppDecision:
        return cls(
            action=AppAction(row["action"]),
            reason=row["reason"],
            decided_by=row["decided_by"],
            decided_at=row["decided_at"],
        )


@strawberry.type(description="An operation an app registered, to be sent by its id instead of its text.")
class TrustedDocument:
    document_id: str = strawberry.field(description="What a request sends as `documentId`: sha256:<hex of the text>.")
    operation_names: list[str] = strawberry.field(description="The named operations the document holds.")
    registered_by: str = strawberry.field(description="Who registered it.")
    registered_at: datetime = strawberry.field(description="When it was registered.")

    @classmethod
    def from_row(cls, row: Row) -> TrustedDocument:
        return cls(
            document_id=f"sha256:{row['sha256']}",
            operation_names=list(row["operation_names"]),
            registered_by=row["registered_by"],
            registered_at=row["registered_at"],
        )


@strawberry.input(description="Budgets set when approving an app; a budget left out keeps the gateway's default.")
class AppLimitsInput:
    requests_per_minute: int | None = strawberry.field(default=None, description="Requests a minute.")
    max_cost_per_request: int | None = strawberry.field(default=None, description="The most one operation may cost.")
    cost_per_minute: int | None = strawberry.field(default=None, description="Cost a minute, all operations together.")


@strawberry.input(
    description="A new app. A backend service gives its public keys (jwks or jwksUri) and "
    "system/ scopes; a user-facing app gives redirect URIs and patient/ or user/ scopes."
)
class RegisterAppInput:
    client_id: str = strawberry.field(description="3-63 lower-case letters, digits and dashes.")
    name: str = strawberry.field(description="The app's name.")
    vendor_org_number: str = strawberry.field(description="The vendor's 9-digit organization number.")
    kind: AppKind = strawberry.field(description="User-facing app or backend service.")
    scopes: list[str] = strawberry.field(description="SMART v2 scopes, e.g. patient/Observation.rs.")
    redirect_uris: list[str] = strawberry.field(default_factory=list, description="For user-facing apps.")
    jwks: JSON | None = strawberry.field(default=None, description="For backend services: a JWKS of public keys.")
    jwks_uri: str | None = strawberry.field(default=None, description="For backend services: https URL of a JWKS.")
    trusted_documents: list[str] = strawberry.field(
        default_factory=list,
        description="The operations the app will send (GraphQL documents); more can be registered later with "
        "`registerTrustedDocuments`.",
    )


ClientIdArg = Annotated[str, strawberry.argument(description="The app's client id.")]
ReasonArg = Annotated[str, strawberry.argument(description="Why: kept with the app and in the audit log.")]


async def apps(
    info: Info,
    first: FirstArg = 50,
    status: Annotated[AppStatus | None, strawberry.argument(description="Only apps in this status.")] = None,
) -> list[App]:
    """Registered apps, newest first: your own, or all of them for a policy admin."""
    rows = await info.context.registry.apps(first, None if status is None else status.value)
    return [App.from_row(r) for r in rows]


async def app(info: Info, client_id: ClientIdArg) -> App | None:
    """One registered app."""
    return App.from_row(await info.context.registry.app(client_id))


@strawberry.type(description="Changes to the app registry. Each is authorized by policy and audited.")
class AppMutations:
    @strawberry.mutation(description="Register an app; it stays pending until a policy admin approves it.")
    async def register_app(
        self, info: Info, input: Annotated[RegisterAppInput, strawberry.argument(description="The app to register.")]
    ) -> App:
        jwks = input.jwks
        if jwks is not None and not isinstance(jwks, dict):
            raise BadUserInput("jwks must be a JSON object with a `keys` list", argument="jwks")
        registration = Registration(
            client_id=input.client_id,
            name=input.name,
            vendor_org_number=input.vendor_org_number,
            kind=input.kind.value,
            redirect_uris=tuple(input.redirect_uris),
            jwks=None if jwks is None else orjson.loads(orjson.dumps(jwks)),
            jwks_uri=input.jwks_uri,
            scopes=tuple(input.scopes),
            documents=tuple(input.trusted_documents),
        )
        return App.from_row(await info.context.registry.register(registration))

    @strawberry.mutation(
        description="Approve a pending or suspended app: its tokens are accepted from now on. Approving a backend "
        "service may name the unit it acts for (the data-processing agreement): its system/ scopes then reach that "
        "unit's patients exactly as the unit's care relations allow; a laboratory or radiology unit's service "
        "delivers results instead."
    )
    async def approve_app(
        self,
        info: Info,
        client_id: ClientIdArg,
        reason: ReasonArg,
        acting_unit_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="For a backend service: the global id of the unit it acts for."),
        ] = None,
        limits: Annotated[
            AppLimitsInput | None,
            strawberry.argument(
                description="The app's budgets of requests and cost; the gateway's defaults if left out."
            ),
        ] = None,
    ) -> App:
        unit = None if acting_unit_id is None else parse_global_id(str(acting_unit_id), K.ORGANIZATION)[1]
        budgets = (
            None
            if limits is None
            else AppLimits(limits.requests_per_minute, limits.max_cost_per_request, limits.cost_per_minute)
        )
        return App.from_row(await info.context.registry.decide(client_id, "approve", reason, unit, budgets))

    @strawberry.mutation(
        description="Register operations an app will send (its trusted documents), as its registrant or a policy "
        "admin. Each document's id is sha256:<hex SHA-256 of its exact text>; registering one again changes nothing."
    )
    async def register_trusted_documents(
        self,
        info: Info,
        client_id: ClientIdArg,
        documents: Annotated[
            list[str], strawberry.argument(description="GraphQL documents, each with at least one operation.")
        ],
    ) -> list[TrustedDocument]:
        rows = await info.context.registry.register_documents(client_id, documents)
        return [TrustedDocument.from_row(r) for r in rows]

    @strawberry.mutation(description="Suspend an approved app: its tokens stop working within seconds.")
    async def suspend_app(self, info: Info, client_id: ClientIdArg, reason: ReasonArg) -> App:
        return App.from_row(await info.context.registry.decide(client_id, "suspend", reason))

    @strawberry.mutation(description="Revoke an app for good.")
    async def revoke_app(self, info: Info, client_id: ClientIdArg, reason: ReasonArg) -> App:
        return App.from_row(await info.context.registry.decide(client_id, "revoke", reason))
