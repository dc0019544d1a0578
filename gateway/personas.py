"""Demo personas: named identities in the seeded demo journal that `akson token` mints tokens for.

The seeder creates exactly these people (same ids, national ids and units) before the random
population, so a persona's token always means the same person with the same care relations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from gateway.national_id import synthetic_national_id

PrincipalKind = Literal["personnel", "citizen", "service"]

DEMO_APP_CLIENT_ID = "akson-demo-app"

# Fixed ids of the demo municipalities and units the personas belong to.
FJORDVIK = UUID("5f1d0c84-0000-4000-8000-000000000001")
NORDBY = UUID("5f1d0c84-0000-4000-8000-000000000002")
FJORDVIK_HOMECARE = UUID("0a9e7a31-0000-4000-8000-000000000011")
FJORDVIK_GP_OFFICE = UUID("0a9e7a31-0000-4000-8000-000000000012")
NORDBY_HOMECARE = UUID("0a9e7a31-0000-4000-8000-000000000021")
# The hospital of the demo region (a health trust, not a municipality): its laboratory, radiology and a ward.
HOSPITAL_LABORATORY = UUID("0a9e7a31-0000-4000-8000-000000000031")
HOSPITAL_RADIOLOGY = UUID("0a9e7a31-0000-4000-8000-000000000032")
HOSPITAL_MEDICAL_WARD = UUID("0a9e7a31-0000-4000-8000-000000000033")
LAB_SERVICE_CLIENT_ID = "fjordvik-hospital-lab"
HOMECARE_INTEGRATION_CLIENT_ID = "fjordvik-homecare-integration"
# What demo tokens let a user-facing app do: read and search everything, create and update what policy allows.
PERSONNEL_SCOPES = "openid fhirUser user/*.crus"
CITIZEN_SCOPES = (
    "openid fhirUser launch/patient patient/*.rs patient/Restriction.cu patient/Observation.c patient/Appointment.u"
)


@dataclass(frozen=True)
class Persona:
    """One demo identity: who it is in the journal and what its token says."""

    name: str
    description: str
    kind: PrincipalKind
    entity_id: UUID | None
    family_name: str = ""
    given_name: str = ""
    birth_date: date | None = None
    hpr_number: str | None = None
    role: str | None = None
    unit_id: UUID | None = None
    client_id: str = DEMO_APP_CLIENT_ID
    scope: str = PERSONNEL_SCOPES
    launch_patient_id: UUID | None = None
    platform_role: str | None = None
    # The municipality whose directory a municipal administrator keeps.
    admin_municipality: UUID | None = None

    @property
    def national_id(self) -> str | None:
        if self.birth_date is None:
            return None
        individual = int(self.entity_id or uuid5(NAMESPACE_URL, self.name)) % 400
        return synthetic_national_id(self.birth_date, individual=individual)


PERSONAS: dict[str, Persona] = {
    p.name: p
    for p in [
        Persona(
            "homecare-nurse",
            "Nurse in Fjordvik home care (hjemmetjeneste); sees the unit's patients",
            "personnel",
            UUID("c0ffee00-0000-4000-8000-000000000101"),
            "Fjellstad",
            "Ingrid",
            date(1984, 3, 14),
            hpr_number="9100101",
            role="nurse",
            unit_id=FJORDVIK_HOMECARE,
        ),
        Persona(
            "gp",
            "General practitioner (fastlege) at Fjordvik GP office",
            "personnel",
            UUID("c0ffee00-0000-4000-8000-000000000102"),
            "Haugen",
            "Erik",
            date(1971, 9, 2),
            hpr_number="9100102",
            role="doctor",
            unit_id=FJORDVIK_GP_OFFICE,
        ),
        Persona(
            "health-secretary",
            "Health secretary at Fjordvik GP office",
            "personnel",
            UUID("c0ffee00-0000-4000-8000-000000000103"),
            "Lund",
            "Marte",
            date(1990, 6, 21),
            hpr_number="9100103",
            role="health_secretary",
            unit_id=FJORDVIK_GP_OFFICE,
        ),
        Persona(
            "nurse-other-municipality",
            "Nurse in Nordby home care; no care relation with Fjordvik's patients",
            "personnel",
            UUID("c0ffee00-0000-4000-8000-000000000104"),
            "Strand",
            "Jonas",
            date(1987, 12, 5),
            hpr_number="9100104",
            role="nurse",
            unit_id=NORDBY_HOMECARE,
        ),
        Persona(
            "policy-admin",
            "Fjordvik's policy admin: approves, suspends and revokes apps; no patient access",
            "personnel",
            UUID("c0ffee00-0000-4000-8000-000000000105"),
            "Dahl",
            "Turid",
            date(1979, 11, 3),
            platform_role="policy_admin",
        ),
        Persona(
            "compliance-officer",
            "Fjordvik's compliance officer: reads the audit log and reviews emergency accesses",
            "personnel",
            UUID("c0ffee00-0000-4000-8000-000000000106"),
            "Moe",
            "Hanne",
            date(1975, 5, 17),
            platform_role="compliance_officer",
        ),
        Persona(
            "municipal-admin",
            "Fjordvik's directory administrator: its units, their staff and roles; no patient access",
            "personnel",
            UUID("c0ffee00-0000-4000-8000-000000000107"),
            "Berge",
            "Randi",
            date(1982, 8, 23),
            platform_role="municipal_admin",
            admin_municipality=FJORDVIK,
        ),
        Persona(
            "directory-admin",
            "The national directory administrator: units of every municipality and of the health trusts",
            "personnel",
            UUID("c0ffee00-0000-4000-8000-000000000108"),
            "Aas",
            "Petter",
            date(1969, 1, 15),
            platform_role="directory_admin",
        ),
        Persona(
            "citizen",
            "A Fjordvik patient receiving home care; reads their own record",
            "citizen",
            UUID("a11ce000-0000-4000-8000-000000000201"),
            "Nordmann",
            "Ola",
            date(1941, 4, 30),
            unit_id=FJORDVIK_HOMECARE,
            scope=CITIZEN_SCOPES,
        ),
        Persona(
            "parent",
            "A Fjordvik parent (not a patient) acting for their 7-year-old daughter Emma",
            "citizen",
            None,
            "Berg",
            "Silje",
            date(1988, 2, 9),
            scope=CITIZEN_SCOPES,
            launch_patient_id=UUID("a11ce000-0000-4000-8000-000000000202"),
        ),
        Persona(
            "vendor-app",
            "A vendor's backend service (client credentials, no user)",
            "service",
            None,
            client_id="vendor-homecare-planner",
            scope="system/Organization.rs system/Practitioner.rs system/PractitionerRole.rs",
        ),
        Persona(
            "lab-service",
            "The hospital laboratory's backend service: delivers results to the unit that asked for them",
            "service",
            None,
            client_id=LAB_SERVICE_CLIENT_ID,
            scope="system/DiagnosticReport.crus system/Observation.crus",
        ),
        Persona(
            "homecare-integration",
            "Fjordvik home care's scheduling integration, acting for the unit (data-processing agreement)",
            "service",
            None,
            client_id=HOMECARE_INTEGRATION_CLIENT_ID,
            scope="system/Patient.rs system/Appointment.crus system/Encounter.crus system/Observation.crs "
            "system/CarePlan.rs",
        ),
    ]
}

# The apps the personas' tokens name: in demo mode they may send query text (GraphiQL) even where trusted
# documents are required.
PERSONA_APPS = frozenset(p.client_id for p in PERSONAS.values())


def people() -> list[Persona]:
    """The personas who are people (not backend services): whom one may sign in as in the demo."""
    return [p for p in PERSONAS.values() if p.kind != "service"]


CITIZEN_PATIENT_ID = PERSONAS["citizen"].entity_id
# The parent persona's daughter: a patient seeded with the parent as guardian.
CHILD_PATIENT_ID = UUID("a11ce000-0000-4000-8000-000000000202")
CHILD_BIRTH_DATE = date(2019, 8, 12)
