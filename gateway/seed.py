"""Deterministic synthetic journal: a Norwegian-flavoured population for the demo and benchmarks.

The same seed gives the same people, ids and numbers (dates are relative to the day of seeding, so
care relations are active when the demo runs). The demo personas are created first with fixed ids.
Rows are generated in Python and loaded with COPY, all in one transaction: a failed seed leaves nothing.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from typing import Any

import asyncpg

from gateway import personas as P
from gateway.national_id import synthetic_national_id

FAMILY_NAMES = [
    "Hansen",
    "Johansen",
    "Olsen",
    "Larsen",
    "Andersen",
    "Pedersen",
    "Nilsen",
    "Kristiansen",
    "Jensen",
    "Karlsen",
    "Johnsen",
    "Pettersen",
    "Eriksen",
    "Berg",
    "Haugen",
    "Hagen",
    "Johannessen",
    "Andreassen",
    "Jacobsen",
    "Dahl",
    "Jørgensen",
    "Halvorsen",
    "Henriksen",
    "Lund",
    "Sørensen",
    "Jakobsen",
    "Moen",
    "Gundersen",
    "Iversen",
    "Strand",
    "Solberg",
    "Svendsen",
    "Eide",
    "Knutsen",
    "Martinsen",
    "Paulsen",
    "Bakken",
    "Kristoffersen",
    "Mathisen",
    "Lie",
    "Amundsen",
    "Nguyen",
    "Rasmussen",
    "Ali",
    "Lunde",
    "Solheim",
    "Berge",
    "Moe",
    "Nygård",
    "Bakke",
    "Kristensen",
    "Fredriksen",
    "Holm",
    "Lien",
    "Hauge",
]
GIVEN_FEMALE = [
    "Anne",
    "Inger",
    "Kari",
    "Marit",
    "Ingrid",
    "Liv",
    "Eva",
    "Berit",
    "Astrid",
    "Bjørg",
    "Hilde",
    "Anna",
    "Solveig",
    "Marianne",
    "Randi",
    "Ida",
    "Nina",
    "Maria",
    "Elisabeth",
    "Kristin",
    "Nora",
    "Emma",
    "Sara",
    "Ella",
    "Olivia",
    "Sofie",
    "Leah",
    "Maja",
    "Ingeborg",
    "Frida",
    "Aud",
    "Gerd",
    "Ragnhild",
    "Sigrid",
]
GIVEN_MALE = [
    "Jan",
    "Per",
    "Bjørn",
    "Ole",
    "Lars",
    "Kjell",
    "Knut",
    "Arne",
    "Svein",
    "Thomas",
    "Hans",
    "Geir",
    "Tor",
    "Morten",
    "Terje",
    "Odd",
    "Erik",
    "Martin",
    "Andreas",
    "John",
    "Jakob",
    "Emil",
    "Noah",
    "Oliver",
    "Filip",
    "Lukas",
    "William",
    "Henrik",
    "Magnus",
    "Olav",
    "Nils",
    "Einar",
    "Ivar",
    "Sverre",
]

UNIT_KINDS = ["legevakt", "fastlegekontor", "fastlegekontor", "hjemmetjeneste", "sykehjem", "helsestasjon"]
STAFFING = {
    "legevakt": [("doctor", 4), ("nurse", 4)],
    "fastlegekontor": [("doctor", 4), ("nurse", 2), ("health_secretary", 2)],
    "hjemmetjeneste": [("nurse", 10), ("care_worker", 6), ("physiotherapist", 1)],
    "sykehjem": [("doctor", 2), ("nurse", 8), ("care_worker", 6)],
    "helsestasjon": [("public_health_nurse", 4), ("doctor", 1)],
}
UNIT_LABEL = {
    "legevakt": "legevakt",
    "fastlegekontor": "legekontor",
    "hjemmetjeneste": "hjemmetjeneste",
    "sykehjem": "sykehjem",
    "helsestasjon": "helsestasjon",
}
ENCOUNTER_CLASS = {
    "legevakt": "EMER",
    "fastlegekontor": "AMB",
    "hjemmetjeneste": "HH",
    "sykehjem": "IMP",
    "helsestasjon": "AMB",
}

LOINC = "http://loinc.org"
# (code, display, unit, mean, sd, category)
VITALS = [
    ("8480-6", "Systolic blood pressure", "mm[Hg]", 135.0, 18.0),
    ("8462-4", "Diastolic blood pressure", "mm[Hg]", 80.0, 10.0),
    ("8867-4", "Heart rate", "/min", 76.0, 12.0),
    ("8310-5", "Body temperature", "Cel", 36.9, 0.5),
    ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", 95.5, 2.5),
    ("29463-7", "Body weight", "kg", 74.0, 14.0),
    ("9279-1", "Respiratory rate", "/min", 16.0, 3.0),
]
LABS = [
    ("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", 12.0, 15.0),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 6.2, 1.0),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 13.5, 1.5),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 1.0, 0.3),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 4.2, 0.4),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 140.0, 3.0),
]

MUNICIPALITIES = [
    (P.FJORDVIK, "9901", "Fjordvik kommune", 0.5),
    (P.NORDBY, "9902", "Nordby kommune", 0.3),
    (uuid.UUID("5f1d0c84-0000-4000-8000-000000000003"), "9903", "Havlia kommune", 0.2),
]
FIXED_UNITS = {
    (P.FJORDVIK, "hjemmetjeneste"): P.FJORDVIK_HOMECARE,
    (P.FJORDVIK, "fastlegekontor"): P.FJORDVIK_GP_OFFICE,
    (P.NORDBY, "hjemmetjeneste"): P.NORDBY_HOMECARE,
}


# The hospital of the demo region: units of a health trust, in no municipality.
HOSPITAL_UNITS = [
    (P.HOSPITAL_LABORATORY, "983974899", "Fjordvik sjukehus, avdeling for medisinsk biokjemi", "laboratorium"),
    (P.HOSPITAL_RADIOLOGY, "983974900", "Fjordvik sjukehus, radiologisk avdeling", "radiologi"),
    (P.HOSPITAL_MEDICAL_WARD, "983974901", "Fjordvik sjukehus, medisinsk avdeling", "sykehusavdeling"),
]
SEEDED_AT = datetime(2026, 1, 1, tzinfo=UTC)

# Apps the demo personas' tokens name, approved so that `akson token` works out of the box; a backend
# service's last field is the unit it acts for.
DEMO_APPS = [
    (
        P.DEMO_APP_CLIENT_ID,
        "Akson demo app",
        "999999999",
        "user-facing",
        ["http://127.0.0.1:8000/callback"],
        None,
        [
            "openid",
            "fhirUser",
            "launch/patient",
            "user/*.crus",
            "patient/*.rs",
            "patient/Restriction.cu",
            "patient/Observation.c",
            "patient/Appointment.u",
        ],
        "approved",
        "seed",
        "seed",
        SEEDED_AT,
        SEEDED_AT,
        None,
    ),
    (
        "vendor-homecare-planner",
        "Home-care visit planner",
        "912345678",
        "backend-service",
        [],
        "https://vendor.example.invalid/.well-known/jwks.json",
        ["system/Organization.rs", "system/Practitioner.rs", "system/PractitionerRole.rs", "system/Patient.rs"],
        "approved",
        "seed",
        "seed",
        SEEDED_AT,
        SEEDED_AT,
        None,
    ),
    (
        P.LAB_SERVICE_CLIENT_ID,
        "Fjordvik sjukehus laboratory results",
        "983974899",
        "backend-service",
        [],
        "https://lab.fjordvik-sjukehus.example.invalid/.well-known/jwks.json",
        ["system/DiagnosticReport.crus", "system/Observation.crus"],
        "approved",
        "seed",
        "seed",
        SEEDED_AT,
        SEEDED_AT,
        P.HOSPITAL_LABORATORY,
    ),
    (
        P.HOMECARE_INTEGRATION_CLIENT_ID,
        "Fjordvik home-care scheduling integration",
        "964965226",
        "backend-service",
        [],
        "https://integrasjon.fjordvik.kommune.example.invalid/.well-known/jwks.json",
        [
            "system/Patient.rs",
            "system/Appointment.crus",
            "system/Encounter.crus",
            "system/Observation.crs",
            "system/CarePlan.rs",
        ],
        "approved",
        "seed",
        "seed",
        SEEDED_AT,
        SEEDED_AT,
        P.FJORDVIK_HOMECARE,
    ),
]

# Journal tables in load order, with the columns the seeder fills.
TABLE_COLUMNS: dict[str, list[str]] = {
    "municipality": ["id", "number", "name", "policy_scope"],
    "organization": ["id", "municipality_id", "org_number", "name", "unit_type"],
    "practitioner": ["id", "national_id", "hpr_number", "family_name", "given_name"],
    "practitioner_role": ["id", "practitioner_id", "organization_id", "role", "period_start", "period_end"],
    "patient": [
        "id",
        "national_id",
        "family_name",
        "given_name",
        "birth_date",
        "gender",
        "municipality_id",
        "owning_unit_id",
        "data_category",
    ],
    "care_relation": [
        "id",
        "patient_id",
        "organization_id",
        "practitioner_id",
        "purpose",
        "period_start",
        "period_end",
        "owning_unit_id",
        "data_category",
    ],
    "encounter": [
        "id",
        "patient_id",
        "owning_unit_id",
        "data_category",
        "practitioner_id",
        "class_code",
        "status",
        "period_start",
        "period_end",
    ],
    "diagnostic_report": [
        "id",
        "patient_id",
        "encounter_id",
        "owning_unit_id",
        "category",
        "status",
        "code_system",
        "code",
        "code_display",
        "effective_at",
        "issued_at",
        "performer_id",
        "conclusion",
    ],
    "observation": [
        "id",
        "patient_id",
        "encounter_id",
        "diagnostic_report_id",
        "owning_unit_id",
        "category",
        "status",
        "code_system",
        "code",
        "code_display",
        "value_quantity",
        "value_unit",
        "effective_at",
    ],
    "condition": [
        "id",
        "patient_id",
        "encounter_id",
        "owning_unit_id",
        "data_category",
        "category",
        "clinical_status",
        "verification_status",
        "code_system",
        "code",
        "code_display",
        "onset_date",
        "abatement_date",
        "recorded_at",
        "recorder_id",
    ],
    "medication_statement": [
        "id",
        "patient_id",
        "owning_unit_id",
        "status",
        "code_system",
        "code",
        "code_display",
        "dosage",
        "effective_start",
        "effective_end",
        "date_asserted",
        "information_source_id",
    ],
    "allergy_intolerance": [
        "id",
        "patient_id",
        "owning_unit_id",
        "clinical_status",
        "category",
        "criticality",
        "code_system",
        "code",
        "code_display",
        "reaction",
        "recorded_at",
        "recorder_id",
    ],
    "clinical_note": [
        "id",
        "patient_id",
        "encounter_id",
        "owning_unit_id",
        "status",
        "author_id",
        "title",
        "text",
        "created_at",
        "signed_at",
        "replaces_id",
    ],
    "care_plan": [
        "id",
        "patient_id",
        "owning_unit_id",
        "status",
        "title",
        "description",
        "period_start",
        "period_end",
        "author_id",
        "created_at",
    ],
    "appointment": [
        "id",
        "patient_id",
        "owning_unit_id",
        "practitioner_id",
        "status",
        "service_type",
        "description",
        "start_at",
        "end_at",
    ],
    "platform_role": ["national_id", "role", "granted_at", "municipality_id"],
    "app": [
        "client_id",
        "name",
        "vendor_org_number",
        "kind",
        "redirect_uris",
        "jwks_uri",
        "requested_scopes",
        "status",
        "registered_by",
        "decided_by",
        "decided_at",
        "registered_at",
        "acting_unit_id",
    ],
    "app_decision": ["client_id", "action", "reason", "decided_by", "decided_at"],
    "guardianship": ["id", "guardian_national_id", "child_patient_id", "basis", "period_start", "period_end"],
    "restriction": [
        "id",
        "patient_id",
        "owning_unit_id",
        "scope",
        "target_kind",
        "target_id",
        "target_category",
        "target_practitioner_id",
        "target_unit_id",
        "reason",
        "period_start",
        "period_end",
        "created_at",
    ],
}


@dataclass
class Unit:
    id: uuid.UUID
    municipality_id: uuid.UUID
    kind: str
    staff: dict[str, list[uuid.UUID]] = field(default_factory=dict)


@dataclass
class SeedReport:
    """What was loaded, and how long it took."""

    counts: dict[str, int]
    seconds: float


class _Generator:
    def __init__(self, seed: int, today: date) -> None:
        self.rng = random.Random(seed)
        self.today = today
        self.now = datetime.combine(today, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
        self.national_ids: set[str] = set()
        self.hpr_counter = 9200000
        self.org_counter = 910000000

    def uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def national_id(self, birth: date) -> str:
        individual = self.rng.randrange(1000)
        for attempt in range(50):
            candidate = synthetic_national_id(birth, individual + attempt * 7)
            if candidate not in self.national_ids:
                self.national_ids.add(candidate)
                return candidate
        raise RuntimeError(f"ran out of synthetic national ids for {birth}")

    def hpr(self) -> str:
        self.hpr_counter += self.rng.randrange(1, 40)
        return str(self.hpr_counter)

    def org_number(self) -> str:
        self.org_counter += self.rng.randrange(1, 5000)
        return str(self.org_counter)

    def birth_date(self) -> date:
        bucket = self.rng.random()
        if bucket < 0.08:
            age = self.rng.uniform(0, 6)
        elif bucket < 0.20:
            age = self.rng.uniform(6, 18)
        elif bucket < 0.62:
            age = self.rng.uniform(18, 67)
        elif bucket < 0.82:
            age = self.rng.uniform(67, 80)
        else:
            age = self.rng.uniform(80, 99)
        return self.today - timedelta(days=int(age * 365.25) + 1)

    def given(self, gender: str) -> str:
        names = GIVEN_FEMALE if gender == "female" else GIVEN_MALE
        first = self.rng.choice(names)
        if self.rng.random() < 0.25:
            return f"{first} {self.rng.choice(names)}"
        return first


async def _copy(conn: asyncpg.Connection, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    if rows:
        await conn.copy_records_to_table(table, records=rows, columns=columns)


Codes = dict[str, list[tuple[str, str, str, bool]]]

NOTE_TEXTS = [
    ("Hjemmebesøk", "Pasienten var i god form. Sår på legg skiftet, tilheler fint. Medisiner gitt etter liste."),
    ("Hjemmebesøk", "Pasienten noe slapp i dag, drakk lite. Oppfordret til mer væske, følges opp i morgen."),
    ("Konsultasjon", "Kontroll av blodtrykk og blodsukker. Stabilt. Fortsetter uendret behandling."),
    ("Konsultasjon", "Hoste i en uke, ikke feber. Lungestetoskopi uten funn. Råd om egenbehandling."),
    ("Legevakt", "Falt hjemme, smerter i hofte. Henvist til røntgen for å utelukke brudd."),
    ("Helsestasjon", "Vekt og lengde følger kurven. Vaksiner etter programmet. Ingen bekymringer."),
]
PLAN_TEXTS = {
    "hjemmetjeneste": ("Plan for hjemmesykepleie", "Besøk morgen og kveld: medisiner, sårstell, hjelp med påkledning."),
    "sykehjem": ("Plan for langtidsopphold", "Daglig tilsyn, ernæringsoppfølging, fysisk aktivitet to ganger i uken."),
    "helsestasjon": ("Helsestasjonsprogram", "Konsultasjoner og vaksiner etter det nasjonale programmet."),
}
RADIOLOGY_CONCLUSIONS = [
    "Ingen sikre tegn til fraktur.",
    "Lett forstørret hjerte, ellers normale forhold.",
    "Artrosforandringer, ingen akutte funn.",
    "Normale forhold.",
]
DOSAGES = [
    "1 tablett morgen",
    "1 tablett morgen og kveld",
    "1 tablett ved behov, maks 4 per døgn",
    "2 tabletter kveld",
    "1 inhalasjon ved behov",
]


async def _code_tables(conn: asyncpg.Connection) -> Codes:
    """The journal's code tables by kind (diagnosis, lab, medication, ...), as loaded by migration 0003."""
    codes: Codes = {}
    for r in await conn.fetch("SELECT system, code, display, kind, sensitive FROM code_concept ORDER BY system, code"):
        codes.setdefault(r["kind"], []).append((r["system"], r["code"], r["display"], r["sensitive"]))
    return codes


def _encounter(
    g: _Generator,
    rows: dict[str, list[tuple[Any, ...]]],
    codes: Codes,
    pid: uuid.UUID,
    unit: Unit,
    practitioner: uuid.UUID,
    count: int,
) -> None:
    """One finished encounter with `count` observations; at GP offices and the legevakt often a lab
    report (a panel whose results are the observations), now and then a radiology report and a note."""
    start = g.now - timedelta(minutes=g.rng.randrange(60, 3 * 365 * 24 * 60))
    eid = g.uuid()
    rows["encounter"].append(
        (
            eid,
            pid,
            unit.id,
            "clinical",
            practitioner,
            ENCOUNTER_CLASS[unit.kind],
            "finished",
            start,
            start + timedelta(minutes=g.rng.randrange(10, 90)),
        )
    )
    is_lab = unit.kind in {"fastlegekontor", "legevakt"} and g.rng.random() < 0.5
    report = None
    if is_lab:
        report = g.uuid()
        system, code, display, _ = g.rng.choice(codes["lab-panel"])
        rows["diagnostic_report"].append(
            (
                report,
                pid,
                eid,
                unit.id,
                "laboratory",
                "final",
                system,
                code,
                display,
                start,
                start + timedelta(hours=g.rng.randrange(2, 48)),
                practitioner,
                None,
            )
        )
    table = LABS if is_lab else VITALS
    for k in range(count):
        code, display, value_unit, mean, sd = table[k % len(table)]
        value = round(max(0.0, g.rng.gauss(mean, sd)), 1)
        rows["observation"].append(
            (
                g.uuid(),
                pid,
                eid,
                report,
                unit.id,
                "laboratory" if is_lab else "vital-signs",
                "final",
                LOINC,
                code,
                display,
                value,
                value_unit,
                start + timedelta(minutes=k),
            )
        )
    if unit.kind in {"fastlegekontor", "legevakt"} and g.rng.random() < 0.05:
        system, code, display, _ = g.rng.choice(codes["radiology"])
        rows["diagnostic_report"].append(
            (
                g.uuid(),
                pid,
                eid,
                unit.id,
                "radiology",
                "final",
                system,
                code,
                display,
                start,
                start + timedelta(days=1),
                practitioner,
                g.rng.choice(RADIOLOGY_CONCLUSIONS),
            )
        )
    if g.rng.random() < 0.3:
        title, text = g.rng.choice(NOTE_TEXTS)
        signed = g.rng.random() < 0.9
        rows["clinical_note"].append(
            (
                g.uuid(),
                pid,
                eid,
                unit.id,
                "signed" if signed else "draft",
                practitioner,
                title,
                text,
                start + timedelta(minutes=30),
                start + timedelta(hours=2) if signed else None,
                None,
            )
        )


def _chart(
    g: _Generator,
    rows: dict[str, list[tuple[Any, ...]]],
    codes: Codes,
    pid: uuid.UUID,
    age: float,
    related: list[tuple[Unit, uuid.UUID | None]],
    staff_of: dict[uuid.UUID, list[uuid.UUID]],
    index_patient: bool,
) -> None:
    """The patient's problem list, medicines, allergies, care plans, appointments and restrictions,
    more of everything for the elderly."""
    gp_office, gp = related[0]
    assert gp is not None
    elderly, child = age >= 70, age < 18
    for _ in range(g.rng.randint(2, 5) if elderly else g.rng.randint(0, 1) if child else g.rng.randint(0, 3)):
        system, code, display, sensitive = g.rng.choice(codes["diagnosis"])
        recorded = g.now - timedelta(days=g.rng.randrange(1, 3000))
        active = g.rng.random() < 0.7
        rows["condition"].append(
            (
                g.uuid(),
                pid,
                None,
                gp_office.id,
                "sensitive" if sensitive else "clinical",
                "problem-list-item",
                "active" if active else "resolved",
                "confirmed",
                system,
                code,
                display,
                recorded.date(),
                None if active else recorded.date() + timedelta(days=60),
                recorded,
                gp,
            )
        )
    for _ in range(g.rng.randint(3, 8) if elderly else 0 if child else g.rng.randint(0, 2)):
        system, code, display, _ = g.rng.choice(codes["medication"])
        began = (g.now - timedelta(days=g.rng.randrange(10, 2000))).date()
        stopped = g.rng.random() < 0.2
        rows["medication_statement"].append(
            (
                g.uuid(),
                pid,
                gp_office.id,
                "stopped" if stopped else "active",
                system,
                code,
                display,
                g.rng.choice(DOSAGES),
                began,
                began + timedelta(days=90) if stopped else None,
                datetime.combine(began, datetime.min.time(), UTC),
                gp,
            )
        )
    if g.rng.random() < 0.15 or index_patient:
        kind = g.rng.choice(["medication", "food", "environment", "biologic"])
        system, code, display, _ = g.rng.choice(codes[f"allergen-{kind}"])
        rows["allergy_intolerance"].append(
            (
                g.uuid(),
                pid,
                gp_office.id,
                "active",
                kind,
                "high" if kind in {"medication", "biologic"} else "low",
                system,
                code,
                display,
                "Utslett" if kind != "biologic" else "Anafylaksi",
                g.now - timedelta(days=g.rng.randrange(30, 5000)),
                gp,
            )
        )
    for unit, _ in related[1:]:
        if unit.kind in PLAN_TEXTS:
            title, text = PLAN_TEXTS[unit.kind]
            began = (g.now - timedelta(days=g.rng.randrange(10, 700))).date()
            author = g.rng.choice(staff_of[unit.id])
            rows["care_plan"].append(
                (
                    g.uuid(),
                    pid,
                    unit.id,
                    "active",
                    title,
                    text,
                    began,
                    None,
                    author,
                    datetime.combine(began, datetime.min.time(), UTC),
                )
            )
    for _ in range(g.rng.randint(0, 3)):
        when = g.now + timedelta(days=g.rng.randrange(-200, 120), hours=g.rng.randrange(-4, 4))
        status = "booked" if when > g.now else g.rng.choice(["fulfilled", "fulfilled", "fulfilled", "noshow"])
        rows["appointment"].append(
            (
                g.uuid(),
                pid,
                gp_office.id,
                gp,
                status,
                "fastlegetime",
                "Konsultasjon hos fastlege",
                when,
                when + timedelta(minutes=20),
            )
        )
    if g.rng.random() < 0.02 and not index_patient:
        other = g.rng.choice([p for p in staff_of[gp_office.id] if p != gp] or [gp])
        created = g.now - timedelta(days=g.rng.randrange(1, 500))
        rows["restriction"].append(
            (
                g.uuid(),
                pid,
                gp_office.id,
                "person",
                None,
                None,
                None,
                other,
                None,
                "Ønsker ikke at denne personen leser journalen",
                created,
                None,
                created,
            )
        )


def _guardians(
    g: _Generator, rows: dict[str, list[tuple[Any, ...]]], child: uuid.UUID, birth: date, persona_child: bool
) -> None:
    """One or two parents for a child, from birth; the parent persona for the persona's daughter."""
    parent = P.PERSONAS["parent"]
    if persona_child:
        assert parent.national_id
        g.national_ids.add(parent.national_id)
        rows["guardianship"].append((g.uuid(), parent.national_id, child, "parent", birth, None))
        return
    for _ in range(g.rng.choice([1, 2, 2])):
        born = birth - timedelta(days=g.rng.randrange(20 * 365, 45 * 365))
        rows["guardianship"].append((g.uuid(), g.national_id(born), child, "parent", birth, None))


async def is_seeded(conn: asyncpg.Connection) -> bool:
    """Whether the journal already holds a population."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM municipality)"))


async def reset(conn: asyncpg.Connection) -> None:
    """Empty every journal table (not the audit log), for a re-seed."""
    await conn.execute(
        "TRUNCATE webhook_attempt, webhook_delivery, webhook_cursor, webhook_endpoint, trusted_document, "
        "app_decision, oauth_authorization_code, app, platform_role, emergency_grant, guardianship, restriction, "
        "appointment, care_plan, clinical_note, allergy_intolerance, medication_statement, condition, observation, "
        "diagnostic_report, encounter, care_relation, patient, practitioner_role, practitioner, "
        "organization_municipality_period, organization, municipality"
    )


async def seed(
    conn: asyncpg.Connection,
    *,
    patients: int,
    observations: int | None = None,
    seed_value: int = 2026,
    today: date | None = None,
) -> SeedReport:
    """Load a population of `patients` people and about `observations` observations (default 40 per
    patient), deterministic for a given seed and day."""
    if patients < 1:
        raise ValueError("patients must be at least 1")
    observations = patients * 40 if observations is None else observations
    started = time.perf_counter()
    g = _Generator(seed_value, today or date.today())
    rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in TABLE_COLUMNS}

    units: list[Unit] = []
    for mid, number, name, _ in MUNICIPALITIES:
        rows["municipality"].append((mid, number, name, name.removesuffix(" kommune").lower()))
        town = name.removesuffix(" kommune")
        seen: dict[str, int] = {}
        for kind in UNIT_KINDS:
            seen[kind] = seen.get(kind, 0) + 1
            unit_id = FIXED_UNITS.get((mid, kind)) if seen[kind] == 1 else None
            unit = Unit(unit_id or g.uuid(), mid, kind)
            units.append(unit)
            suffix = f" {seen[kind]}" if kind == "fastlegekontor" else ""
            rows["organization"].append((unit.id, mid, g.org_number(), f"{town} {UNIT_LABEL[kind]}{suffix}", kind))
    unit_by_id = {u.id: u for u in units}
    for unit_id, org_number, name, kind in HOSPITAL_UNITS:
        rows["organization"].append((unit_id, None, org_number, name, kind))
    start_of_roles = g.today - timedelta(days=3650)

    for persona in P.PERSONAS.values():
        if persona.kind != "personnel":
            continue
        assert persona.entity_id and persona.national_id
        g.national_ids.add(persona.national_id)
        rows["practitioner"].append(
            (persona.entity_id, persona.national_id, persona.hpr_number, persona.family_name, persona.given_name)
        )
        if persona.platform_role:
            rows["platform_role"].append(
                (persona.national_id, persona.platform_role, g.now, persona.admin_municipality)
            )
        if persona.unit_id and persona.role:
            rows["practitioner_role"].append(
                (g.uuid(), persona.entity_id, persona.unit_id, persona.role, start_of_roles, None)
            )
            unit_by_id[persona.unit_id].staff.setdefault(persona.role, []).append(persona.entity_id)
    for app in DEMO_APPS:
        rows["app"].append(app)
        rows["app_decision"].append((app[0], "register", None, "seed", SEEDED_AT))
        rows["app_decision"].append((app[0], "approve", "demo journal", "seed", SEEDED_AT))

    for unit in units:
        for role, count in STAFFING[unit.kind]:
            for _ in range(count):
                pid = g.uuid()
                gender = g.rng.choice(["female", "male"])
                birth = g.today - timedelta(days=g.rng.randrange(25 * 365, 64 * 365))
                hpr = None if role == "health_secretary" else g.hpr()
                rows["practitioner"].append(
                    (pid, g.national_id(birth), hpr, g.rng.choice(FAMILY_NAMES), g.given(gender))
                )
                rows["practitioner_role"].append((g.uuid(), pid, unit.id, role, start_of_roles, None))
                unit.staff.setdefault(role, []).append(pid)

    def units_of(mid: uuid.UUID, kind: str) -> list[Unit]:
        return [u for u in units if u.municipality_id == mid and u.kind == kind]

    weights: list[float] = []
    patient_units: list[list[tuple[Unit, uuid.UUID | None]]] = []
    patient_ids: list[uuid.UUID] = []
    ages: list[float] = []

    def add_relation(
        patient_id: uuid.UUID,
        unit: Unit,
        practitioner: uuid.UUID | None,
        purpose: str,
        start: datetime,
        end: datetime | None,
    ) -> None:
        rows["care_relation"].append(
            (g.uuid(), patient_id, unit.id, practitioner, purpose, start, end, unit.id, "administrative")
        )

    citizen = P.PERSONAS["citizen"]
    for index in range(patients):
        if index == 0:
            assert citizen.entity_id and citizen.birth_date and citizen.national_id
            pid, birth, gender = citizen.entity_id, citizen.birth_date, "male"
            family, given, national_id = citizen.family_name, citizen.given_name, citizen.national_id
            g.national_ids.add(national_id)
            mid = P.FJORDVIK
        elif index == 1:
            pid, birth, gender = P.CHILD_PATIENT_ID, P.CHILD_BIRTH_DATE, "female"
            family, given, national_id = "Berg", "Emma", g.national_id(P.CHILD_BIRTH_DATE)
            mid = P.FJORDVIK
        else:
            pid = g.uuid()
            birth = g.birth_date()
            gender = "female" if g.rng.random() < 0.52 else "male"
            family, given, national_id = g.rng.choice(FAMILY_NAMES), g.given(gender), g.national_id(birth)
            mid = g.rng.choices([m[0] for m in MUNICIPALITIES], weights=[m[3] for m in MUNICIPALITIES])[0]
        age = (g.today - birth).days / 365.25
        gp_office = units_of(mid, "fastlegekontor")[0 if index < 2 else g.rng.randrange(2)]
        gp = g.rng.choice(gp_office.staff["doctor"])
        rows["patient"].append((pid, national_id, family, given, birth, gender, mid, gp_office.id, "demographics"))
        since = g.now - timedelta(days=g.rng.randrange(30, 3000))
        add_relation(pid, gp_office, gp, "fastlege", since, None)
        related: list[tuple[Unit, uuid.UUID | None]] = [(gp_office, gp)]
        if index == 0 or (age >= 70 and g.rng.random() < 0.45):
            homecare = units_of(mid, "hjemmetjeneste")[0]
            add_relation(pid, homecare, None, "hjemmesykepleie", g.now - timedelta(days=g.rng.randrange(10, 900)), None)
            related.append((homecare, None))
        if index != 0 and age >= 75 and g.rng.random() < 0.12:
            home = units_of(mid, "sykehjem")[0]
            add_relation(pid, home, None, "langtidsopphold", g.now - timedelta(days=g.rng.randrange(10, 900)), None)
            related.append((home, None))
        if age < 6:
            station = units_of(mid, "helsestasjon")[0]
            add_relation(
                pid,
                station,
                None,
                "helsestasjonsprogram",
                datetime.combine(birth, datetime.min.time(), UTC),
                None,
            )
            related.append((station, None))
        if age < 18:
            _guardians(g, rows, pid, birth, index == 1)
        if g.rng.random() < 0.08:
            clinic = units_of(mid, "legevakt")[0]
            ended = g.now - timedelta(days=g.rng.randrange(2, 300))
            add_relation(pid, clinic, None, "akutt", ended - timedelta(days=1), ended)
        patient_ids.append(pid)
        ages.append(age)
        patient_units.append(related)
        weights.append(3.0 if age >= 70 else 0.6 if age < 18 else 1.0)

    codes = await _code_tables(conn)
    cumulative = list(accumulate(weights))
    staff_of = {u.id: [p for ps in u.staff.values() for p in ps] for u in units}
    produced = 0
    while produced < observations:
        i = g.rng.choices(range(len(patient_ids)), cum_weights=cumulative)[0]
        unit, practitioner = g.rng.choice(patient_units[i])
        count = min(g.rng.randrange(6, 15), observations - produced)
        _encounter(g, rows, codes, patient_ids[i], unit, practitioner or g.rng.choice(staff_of[unit.id]), count)
        produced += count

    for i, pid in enumerate(patient_ids):
        _chart(g, rows, codes, pid, ages[i], patient_units[i], staff_of, index_patient=i == 0)

    async with conn.transaction():
        for table, cols in TABLE_COLUMNS.items():
            await _copy(conn, table, cols, rows[table])
        await conn.execute("ANALYZE")
    return SeedReport({t: len(r) for t, r in rows.items()}, time.perf_counter() - started)
