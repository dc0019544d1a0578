"""Writes to the journal: create, update and enteredInError for every writable kind, from its declaration.

One transaction holds a write from start to end: who writes is set for the journal's version triggers
(migration 0013), the row's policy attributes are read with the same SQL as reads (the row is locked
for an update), Cerbos decides on them, the row is written and its previous version kept, and the
audit rows are inserted before the commit. A denial, bad input or a failing audit insert rolls all of it
back, so no row changes without its audit rows and no audit row claims a write that did not happen;
denials are still logged, after the rollback, with the request's other records.

A create is decided on the row it would make (inserted in the open transaction, so the attribute SQL
sees exactly what a later read would see), an update on the row before and after the change. A retry
with the same idempotency key (per app) and the same input returns the first result and writes
nothing more; a retry racing the first waits for it on the key's unique index.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import asyncpg
import orjson

from gateway import deadline
from gateway.audit import AuditRecord, AuditTrail, insert_rows
from gateway.auth import Principal
from gateway.authz import Authorizer
from gateway.declare import Coded, Many, Ref, ResourceKind, Transition
from gateway.errors import AuditUnavailable, BadUserInput, Conflict, Forbidden, IdempotencyKeyReused, NotFound
from gateway.national_id import with_check_digits
from gateway.policy_attributes import PATIENT_LEVEL
from gateway.resources import CARE_RELATION, DIAGNOSTIC_REPORT, KINDS, OBSERVATION, PATIENT
from gateway.sql import Sql, ident, join, sql, value
from gateway.store import Row, attributes_of, fetch, phantom_attributes, rows_by_id
from gateway.write_input import Columns, InputChecker, check_order, check_text, check_units

log = logging.getLogger(__name__)

# A write outside any request (the webhook worker's, a command's) may take this long per statement.
WRITE_TIMEOUT_MS = 30_000
CREATE = "create"
UPDATE = "update"
ENTERED_IN_ERROR = "entered_in_error"
IDEMPOTENCY_HOURS = 24
NATIONAL_ID_LENGTH = 11
# Care relation purposes for a patient registered by a unit of each type.
REGISTRATION_PURPOSE = {
    "fastlegekontor": "fastlege",
    "helsestasjon": "helsestasjon",
    "hjemmetjeneste": "hjemmesykepleie",
    "sykehjem": "langtidsopphold",
    "legevakt": "akutt",
}
# The types of the columns a write fills in that no declared field shows (the fields carry their own).
_UNDECLARED_TYPES = {
    "id": "uuid",
    "patient_id": "uuid",
    "owning_unit_id": "uuid",
    "municipality_id": "uuid",
    "data_category": "text",
    "patient_reported": "boolean",
    "diagnostic_report_id": "uuid",
    "performer_organization_id": "uuid",
    "recorder_id": "uuid",
    "entered_in_error_at": "timestamptz",
    "entered_in_error_reason": "text",
    "organization_id": "uuid",
    "purpose": "text",
    "period_start": "timestamptz",
    "target_id": "uuid",
    "lifted_at": "timestamptz",
    "lifted_reason": "text",
    "reviewed_by": "text",
}


def column_types(kind: ResourceKind) -> dict[str, str]:
    """The PostgreSQL type of every column a write of `kind` may set."""
    types = dict(_UNDECLARED_TYPES)
    for item in kind.fields:
        types.update(item.column_types())
    return types


class WriteTransaction:
    """One write's connection and transaction, with its decisions and audit records: committed together,
    or rolled back together (denials are then handed to the request's audit trail)."""

    def __init__(self, pool: asyncpg.Pool, authorizer: Authorizer, principal: Principal, trail: AuditTrail) -> None:
        self._pool = pool
        self._authorizer = authorizer
        self._principal = principal
        self._trail = trail
        self._records: list[AuditRecord] = []
        self._conn: asyncpg.Connection | None = None
        self._transaction: Any = None

    @property
    def conn(self) -> asyncpg.Connection:
        assert self._conn is not None, "the write transaction has not started"
        return self._conn

    async def __aenter__(self) -> WriteTransaction:
        self._conn = await self._pool.acquire()
        try:
            self._transaction = self._conn.transaction()
            await self._transaction.start()
            await self._conn.execute(
                "SELECT set_config('akson.actor', $1, true), set_config('akson.app', $2, true), "
                "set_config('statement_timeout', $3, true)",
                self._principal.ref,
                self._principal.client_id,
                deadline.statement_timeout(WRITE_TIMEOUT_MS),
            )
        except BaseException:
            await self._pool.release(self._conn)
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        try:
            if error is None:
                await self._commit()
                return
            await self._transaction.rollback()
            for record in self._records:
                if not record.allowed:
                    self._trail.record(record)
        finally:
            await self._pool.release(self.conn)

    async def _commit(self) -> None:
        """Insert the audit rows and commit; if the rows cannot be written, nothing of the write stays."""
        try:
            if self._records:
                await insert_rows(self.conn, self._trail.rows(self._records))
            await self._transaction.commit()
        except asyncpg.PostgresError as exc:
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError):
                await self._transaction.rollback()
            log.error("a write and its audit rows could not be committed; nothing was written: %s", type(exc).__name__)
            raise AuditUnavailable("the write could not be recorded in the audit log, so nothing was written") from exc

    async def fetch(self, statement: Sql) -> list[Row]:
        return await fetch(self.conn, statement)

    async def loaded(self, kind: ResourceKind, rid: str, *, lock: bool = False) -> Row | None:
        """A row with its policy attributes and scope, as reads load it; locked for an update."""
        statement = rows_by_id(kind, [rid])
        if lock:
            statement = sql(statement, " FOR UPDATE OF ", ident(kind.alias))
        rows = await self.fetch(statement)
        return rows[0] if rows else None

    async def decide(
        self,
        kind: ResourceKind,
        action: str,
        resources: list[tuple[str, Row | None]],
        *,
        record: bool = True,
        before: dict[str, Any] | None = None,
        emergency: bool = False,
    ) -> None:
        """Cerbos's decision on `action` for each (id, loaded row or None when it does not exist), with one
        audit record per resource (an allow only when `record`: a decision that a later one completes
        leaves the record to it). `before` holds the patient's attributes as they were before this write, so
        that what the write itself adds (a care relation) cannot be what allows it. Any denial raises
        Forbidden with its reason."""
        attributes = [
            (rid, {**attributes_of(kind, row), **(before or {})} if row is not None else phantom_attributes(kind, rid))
            for rid, row in resources
        ]
        scopes = [self._scope(kind, row) for _, row in resources]
        await self.decide_on(kind, action, attributes, scopes, record=record, emergency=emergency)

    async def decide_on(
        self,
        kind: ResourceKind,
        action: str,
        attributes: list[tuple[str, dict[str, Any]]],
        scopes: list[str | None] | None = None,
        *,
        record: bool = True,
        emergency: bool = False,
    ) -> None:
        """`decide` for resources whose attributes the caller has made (e.g. an app being registered)."""
        decisions = await self._authorizer.check(self._principal, kind, action, attributes, scopes)
        denied = None
        for (rid, attrs), decision in zip(attributes, decisions, strict=True):
            if record or not decision.allowed:
                patient = str(attrs.get("patient_id") or "") or None
                self.record(kind, action, rid, patient, decision.allowed, decision.reason, emergency)
            if not decision.allowed and denied is None:
                denied = decision
        if denied is not None:
            raise Forbidden(
                f"you may not {action.replace('_', ' ')} ({kind.type_name})",
                reason=denied.reason,
                policyVersion=self._authorizer.policy_version,
            )

    def record(
        self,
        kind: ResourceKind,
        action: str,
        rid: str,
        patient: str | None,
        allowed: bool,
        reason: str,
        emergency: bool = False,
    ) -> None:
        """One audit record for one resource this write touched (or tried to); emergency when an emergency
        grant allowed it or it opens one."""
        if not kind.is_patient_data:
            patient = None
        flagged = emergency or reason == "EMERGENCY_GRANT"
        self._records.append(AuditRecord(patient, kind.name, (rid,), action, allowed, reason, flagged))

    def _scope(self, kind: ResourceKind, row: Row | None) -> str | None:
        if not kind.scope_sql:
            return None
        if row is not None:
            return str(row["_scope"]) if row["_scope"] else None
        return self._principal.home_scopes[0] if self._principal.home_scopes else None


class JournalWriter:
    """Per-request door for writes of the declared kinds."""

    def __init__(self, pool: asyncpg.Pool, authorizer: Authorizer, principal: Principal, trail: AuditTrail) -> None:
        self._pool = pool
        self._authorizer = authorizer
        self._principal = principal
        self._trail = trail

    def _transaction(self) -> WriteTransaction:
        return WriteTransaction(self._pool, self._authorizer, self._principal, self._trail)

    # ---- create ---------------------------------------------------------------------------------------

    async def create(
        self, kind: ResourceKind, given: dict[str, Any], idempotency_key: str | None = None
    ) -> tuple[Row | None, str]:
        """Create a resource of `kind`: its row (None when the key was used before: the id is then that of the
        first result, which the caller reads through the read path) and its id."""
        if not kind.writable:
            raise BadUserInput(f"{kind.type_name} resources are not created this way", argument="input")
        new_id = str(uuid.uuid4())
        async with self._transaction() as tx:
            if idempotency_key is not None:
                earlier = await self._claim(tx, kind, idempotency_key, given, new_id)
                if earlier is not None:
                    return None, earlier
            if kind is PATIENT:
                row = await self._register_patient(tx, given, new_id)
            elif not kind.is_patient_data:
                row = await self._create_directory_entry(tx, kind, given, new_id)
            else:
                row = await self._create_patient_data(tx, kind, given, new_id)
        return row, new_id

    async def _claim(
        self, tx: WriteTransaction, kind: ResourceKind, key: str, given: dict[str, Any], new_id: str
    ) -> str | None:
        """Take the idempotency key for this request, or say which resource the same request made before.
        A concurrent request with the same key waits here until the first one commits or rolls back."""
        check_text(key, "idempotencyKey", max_length=200)
        fingerprint = hashlib.sha256(
            orjson.dumps([self._principal.ref, kind.type_name, given], default=str, option=orjson.OPT_SORT_KEYS)
        ).hexdigest()
        client = self._principal.client_id
        expires = datetime.now(UTC) + timedelta(hours=IDEMPOTENCY_HOURS)
        taken = await tx.conn.fetchval(
            """INSERT INTO idempotency_key (client_id, key, request_hash, resource_kind, resource_id, expires_at)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (client_id, key) DO UPDATE
                  SET request_hash = EXCLUDED.request_hash, resource_kind = EXCLUDED.resource_kind,
                      resource_id = EXCLUDED.resource_id, created_at = now(), expires_at = EXCLUDED.expires_at
                WHERE idempotency_key.expires_at <= now()
               RETURNING true""",
            client,
            key,
            fingerprint,
            kind.type_name,
            uuid.UUID(new_id),
            expires,
        )
        if taken:
            return None
        earlier = await tx.conn.fetchrow(
            "SELECT request_hash, resource_kind, resource_id FROM idempotency_key WHERE client_id = $1 AND key = $2",
            client,
            key,
        )
        assert earlier is not None
        if earlier["request_hash"] != fingerprint or earlier["resource_kind"] != kind.type_name:
            raise IdempotencyKeyReused(
                "this idempotency key was used for another request; use a new key for a new write",
                argument="idempotencyKey",
            )
        return str(earlier["resource_id"])

    async def _patient(self, tx: WriteTransaction, kind: ResourceKind, given: dict[str, Any]) -> tuple[str, Row | None]:
        """The patient a new resource belongs to (by id or national identity number) and their row, None when
        no such patient exists (the write is then decided as one about nobody, and denied like a hidden one)."""
        by_id, by_number = given.pop("patient", None), given.pop("patient_national_identity_number", None)
        if (by_id is None) == (by_number is None):
            raise BadUserInput("give either patientId or patientNationalIdentityNumber", argument="input.patientId")
        if by_number is not None:
            number = check_text(by_number, "input.patientNationalIdentityNumber", max_length=NATIONAL_ID_LENGTH)
            if number is None or len(number) != NATIONAL_ID_LENGTH or not number.isdigit():
                raise BadUserInput(
                    "input.patientNationalIdentityNumber must be 11 digits",
                    argument="input.patientNationalIdentityNumber",
                )
            found = await tx.conn.fetchval("SELECT id::text FROM patient WHERE national_id = $1", number)
            patient_id = found or str(uuid.uuid5(uuid.NAMESPACE_OID, number))
        else:
            patient_id = str(by_id)
        return patient_id, await tx.loaded(PATIENT, patient_id)

    async def _create_patient_data(
        self, tx: WriteTransaction, kind: ResourceKind, given: dict[str, Any], new_id: str
    ) -> Row:
        results = given.pop("results", None) if kind is DIAGNOSTIC_REPORT else None
        patient_id, patient = await self._patient(tx, kind, given)
        if patient is None:
            await tx.decide(kind, CREATE, [(new_id, None)])
            raise NotFound("no patient with this identity is in the journal")
        columns = await InputChecker(tx.conn, kind, patient_id).columns(given, creating=True)
        check_units(kind, columns)
        owning_unit = await self._owning_unit(tx, kind, patient, columns)
        values = {**columns.values, "id": new_id, "patient_id": patient_id, "owning_unit_id": owning_unit}
        self._derive(kind, columns, values)
        check_order(kind, values)
        before = patient_level(patient)
        row = await insert_row(tx, kind, values)
        await tx.decide(kind, CREATE, [(new_id, await tx.loaded(kind, new_id))], before=before)
        if results:
            await self._create_results(tx, row, results, before)
        return row

    async def _create_directory_entry(
        self, tx: WriteTransaction, kind: ResourceKind, given: dict[str, Any], new_id: str
    ) -> Row:
        """A unit, a person or a role in the directory: decided on the row as it would be stored."""
        columns = await InputChecker(tx.conn, kind, None).columns(given, creating=True)
        check_order(kind, columns.values)
        row = await insert_row(tx, kind, {**columns.values, "id": new_id})
        await tx.decide(kind, CREATE, [(new_id, await tx.loaded(kind, new_id))])
        return row

    def _derive(self, kind: ResourceKind, columns: Columns, values: dict[str, Any]) -> None:
        """What a create fills in by itself: timestamps, the writing practitioner, the category its code
        implies, the data category of a sensitive code, and whether a patient reported it."""
        now = datetime.now(UTC)
        for column in kind.stamped:
            values.setdefault(column, now)
        practitioner = self._principal.practitioner_id
        writer_columns = [*kind.writer_columns, *(f.column for f in kind.fields if isinstance(f, Ref) and f.writer)]
        for column in writer_columns:
            if values.get(column) is None and practitioner is not None:
                values[column] = practitioner
        concept = columns.concept
        if concept is not None:
            if "category" not in values and concept["kind"] in kind.category_from_concept:
                values["category"] = kind.category_from_concept[concept["kind"]]
            if kind.sensitive_codes:
                values["data_category"] = "sensitive" if concept["sensitive"] else "clinical"
        if kind is OBSERVATION:
            values["patient_reported"] = self._principal.kind == "citizen"
        if kind is DIAGNOSTIC_REPORT and "diagnostic_service" in self._principal.roles:
            values["performer_organization_id"] = self._principal.unit_ids[0]
        if "category" not in values and any(f.name == "category" and f.create for f in kind.fields):
            raise BadUserInput("input.category is required for this code", argument="input.category")

    async def _owning_unit(self, tx: WriteTransaction, kind: ResourceKind, patient: Row, columns: Columns) -> str:
        """The unit whose journal a new resource goes into: the requesting unit for a delivered result, the
        unit a service acts for, the writer's unit that cares for the patient (or their first unit), or,
        for what a patient reports, the unit that manages their record."""
        p = self._principal
        if "diagnostic_service" in p.roles:
            return await self._requesting_unit(tx, patient, columns)
        if p.kind == "citizen" or not p.unit_ids:
            return str(patient["owning_unit_id"])
        caring = [unit for unit in p.unit_ids if unit in set(attributes_of(PATIENT, patient)["care_unit_ids"])]
        return (caring or list(p.unit_ids))[0]

    async def _requesting_unit(self, tx: WriteTransaction, patient: Row, columns: Columns) -> str:
        unit, practitioner = columns.values.get("requester_unit_id"), columns.values.get("requester_practitioner_id")
        if unit is not None:
            return str(unit)
        if practitioner is None:
            raise BadUserInput(
                "name who asked for the examination: requestingOrganizationId or requesterId",
                argument="input.requestingOrganizationId",
            )
        caring = set(attributes_of(PATIENT, patient)["care_unit_ids"])
        units = await tx.conn.fetch(
            "SELECT organization_id::text AS unit FROM practitioner_role WHERE practitioner_id = $1 "
            "AND period_start <= current_date AND (period_end IS NULL OR period_end >= current_date) ORDER BY 1",
            practitioner,
        )
        found: list[str] = [r["unit"] for r in units]
        chosen = next((u for u in found if u in caring), found[0] if found else None)
        if chosen is None:
            raise BadUserInput("the requester has no active role in any unit", argument="input.requesterId")
        columns.values["requester_unit_id"] = uuid.UUID(chosen)
        return chosen

    async def _create_results(
        self, tx: WriteTransaction, report: Row, results: list[dict[str, Any]], before: dict[str, Any]
    ) -> None:
        """A delivered report's results: observations of the same patient, encounter and unit, decided
        together (one PDP call) and audited one by one."""
        made: list[str] = []
        patient_id = str(report["patient_id"])
        for index, result in enumerate(results):
            prefix = f"input.results.{index}"
            result.setdefault("effective_date_time", report["effective_at"])
            checker = InputChecker(tx.conn, OBSERVATION, patient_id)
            columns = await checker.columns(result, creating=True, prefix=prefix)
            check_units(OBSERVATION, columns, prefix)
            values = {
                **columns.values,
                "id": str(result_id(report["id"], index)),
                "patient_id": patient_id,
                "owning_unit_id": report["owning_unit_id"],
                "diagnostic_report_id": report["id"],
                "encounter_id": report["encounter_id"],
                "status": columns.values.get(
                    "status", report["status"] if report["status"] != "registered" else "final"
                ),
            }
            self._derive(OBSERVATION, columns, values)
            made.append(str((await insert_row(tx, OBSERVATION, values))["id"]))
        loaded = {str(r["id"]): r for r in await tx.fetch(rows_by_id(OBSERVATION, made))}
        await tx.decide(OBSERVATION, CREATE, [(rid, loaded[rid]) for rid in made], before=before)

    async def _register_patient(self, tx: WriteTransaction, given: dict[str, Any], new_id: str) -> Row:
        """A new resident or newborn, registered by one of the writer's units, which manages the record and
        gets a care relation with them (the registration's purpose), so that it can go on caring for them."""
        given.pop("patient", None)
        given.pop("patient_national_identity_number", None)
        columns = await InputChecker(tx.conn, PATIENT, None).columns(given, creating=True)
        unit_given = columns.values.pop("owning_unit_id", None)
        number = columns.values["national_id"]
        if len(number) != NATIONAL_ID_LENGTH or not number.isdigit() or with_check_digits(number[:9]) != number:
            raise BadUserInput(
                "input.nationalIdentityNumber must be 11 digits with valid check digits",
                argument="input.nationalIdentityNumber",
            )
        if await tx.conn.fetchval("SELECT 1 FROM patient WHERE national_id = $1", number):
            raise BadUserInput(
                "a patient with this national identity number is registered already",
                argument="input.nationalIdentityNumber",
            )
        unit = str(unit_given) if unit_given is not None else (self._principal.unit_ids or (None,))[0]
        if unit is None:
            raise BadUserInput("name the unit that manages the record", argument="input.managingOrganizationId")
        place = await tx.conn.fetchrow("SELECT municipality_id, unit_type FROM organization WHERE id = $1::uuid", unit)
        if place is None or place["municipality_id"] is None:
            raise BadUserInput(
                "input.managingOrganizationId must be a municipal unit", argument="input.managingOrganizationId"
            )
        row = await insert_row(
            tx,
            PATIENT,
            {**columns.values, "id": new_id, "owning_unit_id": unit, "municipality_id": place["municipality_id"]},
        )
        relation = str(uuid.uuid4())
        await insert_row(
            tx,
            CARE_RELATION,
            {
                "id": relation,
                "patient_id": new_id,
                "organization_id": unit,
                "owning_unit_id": unit,
                "purpose": REGISTRATION_PURPOSE.get(place["unit_type"], place["unit_type"]),
                # The transaction's own time: the relation is in force for the decision this transaction makes.
                "period_start": await tx.conn.fetchval("SELECT now()"),
            },
        )
        await tx.decide(PATIENT, CREATE, [(new_id, await tx.loaded(PATIENT, new_id))])
        tx.record(CARE_RELATION, CREATE, relation, new_id, True, "REGISTRATION")
        return row

    # ---- update and entered in error ------------------------------------------------------------------

    async def update(self, kind: ResourceKind, rid: str, expected_version: int, given: dict[str, Any]) -> Row:
        """Change a resource, if it is still at `expected_version`: decided on it before and after the change."""
        if not kind.writable:
            raise BadUserInput(f"{kind.type_name} resources are not updated this way", argument="id")
        if not given:
            raise BadUserInput("give at least one field to change", argument="input")
        async with self._transaction() as tx:
            current = await self._current(tx, kind, rid, UPDATE, expected_version)
            patient_id = str(current[kind.patient_column or "id"])
            columns = await InputChecker(tx.conn, kind, patient_id).columns(given, creating=False)
            if columns.concept is None:
                columns.concept = await self._concept_of(tx, kind, current)
            if columns.concept is not None and kind.sensitive_codes:
                columns.values["data_category"] = "sensitive" if columns.concept["sensitive"] else "clinical"
            check_units(kind, columns)
            check_order(kind, {**dict(current), **columns.values})
            patient = await tx.loaded(PATIENT, patient_id) if kind.is_patient_data else None
            row = await _updated(tx, kind, rid, columns.values)
            before = patient_level(patient) if patient is not None else None
            await tx.decide(kind, UPDATE, [(rid, await tx.loaded(kind, rid))], before=before)
        return row

    async def _concept_of(self, tx: WriteTransaction, kind: ResourceKind, row: Row) -> asyncpg.Record | None:
        """The code-table concept a stored row's code is (its unit checks a new value's unit)."""
        coded = coded_fields(kind)
        if not coded:
            return None
        system, code, _ = coded[0].columns
        concept: asyncpg.Record | None = await tx.conn.fetchrow(
            "SELECT system, code, display, kind, sensitive, unit FROM code_concept WHERE system = $1 AND code = $2",
            row[system],
            row[code],
        )
        return concept

    async def entered_in_error(self, kind: ResourceKind, rid: str, reason: str) -> Row:
        """Mark a resource entered in error: kept as it was, hidden from lists, its mark in its history."""
        text = check_text(reason, "reason", max_length=1000)
        if not kind.may_be_entered_in_error:
            raise BadUserInput(f"{kind.type_name} resources cannot be marked entered in error", argument="id")
        async with self._transaction() as tx:
            await self._current(tx, kind, rid, ENTERED_IN_ERROR, None, record=True)
            row = await _updated(
                tx, kind, rid, {"entered_in_error_at": datetime.now(UTC), "entered_in_error_reason": text}
            )
        return row

    async def transition(self, kind: ResourceKind, rid: str, step: Transition, expected_version: int | None) -> Row:
        """Take a declared transition (cancel an appointment): decided as its own action on the row as it stands."""
        async with self._transaction() as tx:
            current = await self._current(tx, kind, rid, step.action, expected_version, record=True)
            if current[step.column] not in step.allowed_from:
                raise BadUserInput(
                    f"only a {kind.type_name} that is {' or '.join(step.allowed_from)} can be {step.to}, "
                    f"this one is {current[step.column]}",
                    argument="id",
                )
            row = await _updated(tx, kind, rid, {step.column: step.to})
        return row

    async def _current(
        self,
        tx: WriteTransaction,
        kind: ResourceKind,
        rid: str,
        action: str,
        expected: int | None,
        *,
        record: bool = False,
    ) -> Row:
        """The row as it stands, locked, after the policy allowed `action` on it; the audit record is left to
        the decision on the result unless `record`. A version other than `expected` is a conflict, told
        only to whoever may write the resource."""
        current = await tx.loaded(kind, rid, lock=True)
        await tx.decide(kind, action, [(rid, current)], record=record)
        if current is None:
            raise NotFound(f"no {kind.type_name} with this id exists")
        if current.get("entered_in_error_at") is not None:
            raise BadUserInput(f"this {kind.type_name} was entered in error; it no longer changes", argument="id")
        if expected is not None and current["version"] != expected:
            raise Conflict(
                f"this {kind.type_name} is at version {current['version']}, not {expected}: read it again first",
                currentVersion=current["version"],
            )
        return current


async def insert_row(tx: WriteTransaction, kind: ResourceKind, values: dict[str, Any]) -> Row:
    """Insert one row of `kind` with `values` (columns the declaration knows, each cast to its type)."""
    types = column_types(kind)
    names = list(values)
    rows = await tx.fetch(
        sql(
            "INSERT INTO ",
            ident(kind.table),
            " AS ",
            ident(kind.alias),
            " (",
            join(ident(name) for name in names),
            ") VALUES (",
            join(value(values[name], types[name]) for name in names),
            ") RETURNING ",
            kind.select_list(),
        )
    )
    return rows[0]


async def update_row(
    tx: WriteTransaction, kind: ResourceKind, rid: str, values: dict[str, Any], guard: Sql | None = None
) -> Row | None:
    """Set `values` on one row of `kind` (its earlier version is kept by the trigger); None when `guard`, a
    condition on the row, does not hold."""
    types = column_types(kind)
    assignments = join(sql(ident(name), " = ", value(item, types[name])) for name, item in values.items())
    rows = await tx.fetch(
        sql(
            "UPDATE ",
            kind.table_sql,
            " SET ",
            assignments,
            " WHERE ",
            kind.col("id"),
            " = ",
            value(rid, "uuid"),
            *((" AND ", guard) if guard is not None else ()),
            " RETURNING ",
            kind.select_list(),
        )
    )
    return rows[0] if rows else None


async def _updated(tx: WriteTransaction, kind: ResourceKind, rid: str, values: dict[str, Any]) -> Row:
    """`update_row` of a row the transaction holds locked: it is there."""
    row = await update_row(tx, kind, rid, values)
    assert row is not None
    return row


def result_id(report_id: object, index: int) -> uuid.UUID:
    """The id of a delivered report's result at `index` of its input: derived from the report's (random) id,
    so that a client that sent the results in order can name each one's id, on a retry too."""
    return uuid.uuid5(uuid.UUID(str(report_id)), f"result/{index}")


def patient_level(patient: Row) -> dict[str, Any]:
    """The attributes that depend on the patient alone (care relations, grants, age), from their row."""
    attributes = attributes_of(PATIENT, patient)
    return {name: attributes[name] for name in PATIENT_LEVEL}


def coded_fields(kind: ResourceKind) -> list[Coded]:
    """The code fields of a kind (what its code-table checks apply to)."""
    return [f for f in kind.fields if isinstance(f, Coded)]


def nested_kind(kind: ResourceKind, name: str) -> ResourceKind:
    """The kind a nested create list of `kind` makes (a report's results are observations)."""
    item = kind.field(name)
    assert isinstance(item, Many)
    return KINDS[item.target]
