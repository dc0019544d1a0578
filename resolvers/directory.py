"""The directory: organization units, practitioners and their roles (not patient data)."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import Annotated

import strawberry
from strawberry import relay

from gateway.resources import ORGANIZATION, PRACTITIONER, PRACTITIONER_ROLE
from gateway.store import Row
from resolvers.common import (
    AfterArg,
    Connection,
    DatePeriod,
    FirstArg,
    HumanName,
    Info,
    child_list,
    list_args,
    node_type,
)
from resolvers.common import to_one as _to_one


@strawberry.enum(description="The kind of municipal health service a unit provides.")
class UnitType(Enum):
    LEGEVAKT = "legevakt"
    FASTLEGEKONTOR = "fastlegekontor"
    HJEMMETJENESTE = "hjemmetjeneste"
    SYKEHJEM = "sykehjem"
    HELSESTASJON = "helsestasjon"


@strawberry.enum(description="What a practitioner does in a unit.")
class PractitionerRoleCode(Enum):
    DOCTOR = "doctor"
    NURSE = "nurse"
    HEALTH_SECRETARY = "health_secretary"
    PHYSIOTHERAPIST = "physiotherapist"
    PUBLIC_HEALTH_NURSE = "public_health_nurse"
    CARE_WORKER = "care_worker"


@strawberry.input(description="Narrows a list of units.")
class OrganizationFilter:
    unit_type: UnitType | None = strawberry.field(default=None, description="Only units of this type.")


@node_type(ORGANIZATION)
@strawberry.type(description="A municipal health service unit (FHIR Organization).")
class Organization(relay.Node):
    id: relay.NodeID[str]
    name: str = strawberry.field(description="The unit's name.")
    org_number: str = strawberry.field(description="Organization number in the Central Coordinating Register.")
    unit_type: UnitType = strawberry.field(description="The service the unit provides.")

    @classmethod
    def from_row(cls, row: Row) -> Organization:
        return cls(
            id=str(row["id"]), name=row["name"], org_number=row["org_number"], unit_type=UnitType(row["unit_type"])
        )


@node_type(PRACTITIONER)
@strawberry.type(description="A person working in the municipality's health services (FHIR Practitioner).")
class Practitioner(relay.Node):
    id: relay.NodeID[str]
    name: HumanName = strawberry.field(description="The practitioner's name.")
    hpr_number: str | None = strawberry.field(
        description="Number in the Health Personnel Register (HPR); null for non-health personnel."
    )
    db_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: Row) -> Practitioner:
        return cls(
            id=str(row["id"]),
            name=HumanName(family=row["family_name"], given=row["given_name"].split()),
            hpr_number=row["hpr_number"],
            db_id=row["id"],
        )

    @strawberry.field(description="The practitioner's roles in units, latest first.")
    async def roles(
        self, info: Info, first: FirstArg = 20, after: AfterArg = None
    ) -> Connection[Annotated[PractitionerRole, strawberry.lazy("resolvers.directory")]]:
        return await child_list(info, PRACTITIONER_ROLE, "practitioner_id", self.db_id, list_args(first, after))


@node_type(PRACTITIONER_ROLE)
@strawberry.type(description="A practitioner's role in a unit for a period (FHIR PractitionerRole).")
class PractitionerRole(relay.Node):
    id: relay.NodeID[str]
    role: PractitionerRoleCode = strawberry.field(description="What the practitioner does in the unit.")
    period: DatePeriod = strawberry.field(description="When the role applies.")
    practitioner_id: strawberry.Private[uuid.UUID]
    organization_id: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: Row) -> PractitionerRole:
        return cls(
            id=str(row["id"]),
            role=PractitionerRoleCode(row["role"]),
            period=DatePeriod(start=row["period_start"], end=row["period_end"]),
            practitioner_id=row["practitioner_id"],
            organization_id=row["organization_id"],
        )

    @strawberry.field(description="The practitioner in this role.")
    async def practitioner(self, info: Info) -> Practitioner | None:
        result: Practitioner | None = await _to_one(info, PRACTITIONER, self.practitioner_id)
        return result

    @strawberry.field(description="The unit the role is in.")
    async def organization(self, info: Info) -> Organization | None:
        result: Organization | None = await _to_one(info, ORGANIZATION, self.organization_id)
        return result
