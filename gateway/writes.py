"""Writes with rules of their own: emergency access grants (akuttilgang), the patient's restrictions
(sperring), clinical notes (drafts, signing, corrections) and reorganizations (mergers, transfers). Like
every write, each one runs in one transaction with its policy decision and its audit rows
(gateway/write_path.py)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from gateway.audit import AuditRecord, AuditTrail
from gateway.auth import Principal
from gateway.authz import Authorizer
from gateway.errors import BadUserInput, Forbidden, NotFound
from gateway.reorganize import REASON as REORGANIZATION
from gateway.reorganize import Reorganization, Reorganizer, check_merge, find_municipality
from gateway.resources import CLINICAL_NOTE, EMERGENCY_GRANT, KINDS, MUNICIPALITY, ORGANIZATION, PATIENT, RESTRICTION
from gateway.sql import sql
from gateway.store import Row
from gateway.write_input import InputChecker, check_text
from gateway.write_path import WriteTransaction, insert_row, patient_level, update_row

EMERGENCY_ACCESS_HOURS = 4
DATA_CATEGORIES = {
    "demographics",
    "administrative",
    "clinical",
    "medication",
    "critical-information",
    "clinical-note",
    "sensitive",
}


def _check_note(title: str | None, text: str | None) -> None:
    if title is not None and not 1 <= len(title.strip()) <= 200:
        raise BadUserInput("a note's title must be 1 to 200 characters", argument="title")
    check_text(title, "title", max_length=200, required=False)
    if text is not None and not 1 <= len(text.strip()) <= 20_000:
        raise BadUserInput("a note's text must be 1 to 20,000 characters", argument="text")
    check_text(text, "text", max_length=20_000, required=False)


class _Preview(Exception):
    """Rolls a reorganization's transaction back after it was carried out (a dry run)."""

    def __init__(self, done: Reorganization) -> None:
        self.done = done


class JournalWrites:
    """Per-request door for the writes the access rules and clinical notes need."""

    def __init__(self, pool: asyncpg.Pool, authorizer: Authorizer, principal: Principal, audit: AuditTrail) -> None:
        self._pool = pool
        self._authorizer = authorizer
        self._principal = principal
        self._audit = audit

    def _transaction(self) -> WriteTransaction:
        return WriteTransaction(self._pool, self._authorizer, self._principal, self._audit)

    async def _patient(self, tx: WriteTransaction, patient_id: str) -> Row:
        patient = await tx.loaded(PATIENT, patient_id)
        if patient is None:
            raise NotFound("no patient with this id exists")
        return patient

    async def request_emergency_access(self, patient_id: str, reason: str, life_or_health_at_risk: bool) -> Row:
        """A time-limited grant to read a patient's record without a care relation, flagged for review."""
        text = check_text(reason, "reason", max_length=1000)
        if text is None or not 10 <= len(text.strip()) <= 1000:
            raise BadUserInput("state the reason for emergency access in 10 to 1000 characters", argument="reason")
        if self._principal.kind != "personnel":
            raise Forbidden("only personnel may request emergency access", reason="ROLE_CATEGORY")
        async with self._transaction() as tx:
            patient = await self._patient(tx, patient_id)
            await tx.decide(PATIENT, "request_emergency_access", [(patient_id, patient)], emergency=True)
            now = datetime.now(UTC)
            grant = await insert_row(
                tx,
                EMERGENCY_GRANT,
                {
                    "id": str(uuid.uuid4()),
                    "patient_id": patient_id,
                    "practitioner_id": self._principal.id,
                    "reason": text.strip(),
                    "life_or_health_at_risk": life_or_health_at_risk,
                    "granted_at": now,
                    "expires_at": now + timedelta(hours=EMERGENCY_ACCESS_HOURS),
                },
            )
            tx.record(EMERGENCY_GRANT, "create", str(grant["id"]), patient_id, True, "EMERGENCY_REQUESTED", True)
        return grant

    async def review_emergency_access(self, grant_id: str, conclusion: str) -> Row:
        """Record the after-the-fact review of an emergency access."""
        text = check_text(conclusion, "conclusion", max_length=2000)
        if text is None or not 3 <= len(text.strip()) <= 2000:
            raise BadUserInput("a review needs a conclusion of 3 to 2000 characters", argument="conclusion")
        async with self._transaction() as tx:
            grant = await tx.loaded(EMERGENCY_GRANT, grant_id, lock=True)
            await tx.decide(EMERGENCY_GRANT, "review", [(grant_id, grant)])
            if grant is None:
                raise NotFound("no emergency grant with this id exists")
            updated = await update_row(
                tx,
                EMERGENCY_GRANT,
                grant_id,
                {
                    "reviewed_at": datetime.now(UTC),
                    "reviewed_by": self._principal.id,
                    "review_conclusion": text.strip(),
                },
                sql("eg2.reviewed_at IS NULL"),
            )
            if updated is None:
                raise BadUserInput("this emergency access was reviewed already", argument="id")
        return updated

    async def create_restriction(
        self,
        patient_id: str,
        scope: str,
        reason: str,
        *,
        practitioner_id: str | None,
        organization_id: str | None,
        category: str | None,
        target_kind: str | None,
        target_id: str | None,
        until: datetime | None,
    ) -> Row:
        """Record a patient's block; it denies access from the next request on."""
        self._validate(scope, reason, practitioner_id, organization_id, category, target_id, until)
        async with self._transaction() as tx:
            patient = await self._patient(tx, patient_id)
            if scope == "guardians" and not 12 <= int(patient_level(patient)["patient_age"]) < 18:
                raise BadUserInput("only a child aged 12 to 17 can restrict what their parents see", argument="scope")
            if target_id is not None:
                await self._check_target(tx, patient_id, target_kind or "", target_id, scope)
            checker = InputChecker(tx.conn, RESTRICTION, patient_id)
            if practitioner_id is not None:
                await checker.reference(KINDS["Practitioner"], practitioner_id, "input.practitionerId")
            if organization_id is not None:
                await checker.reference(KINDS["Organization"], organization_id, "input.organizationId")
            now = datetime.now(UTC)
            rid = str(uuid.uuid4())
            row = await insert_row(
                tx,
                RESTRICTION,
                {
                    "id": rid,
                    "patient_id": patient_id,
                    "owning_unit_id": patient["owning_unit_id"],
                    "scope": scope,
                    "target_kind": target_kind,
                    "target_id": target_id,
                    "target_category": category,
                    "target_practitioner_id": practitioner_id,
                    "target_unit_id": organization_id,
                    "reason": reason.strip(),
                    "period_start": now,
                    "period_end": until,
                    "created_at": now,
                },
            )
            await tx.decide(
                RESTRICTION, "create", [(rid, await tx.loaded(RESTRICTION, rid))], before=patient_level(patient)
            )
        return row

    async def lift_restriction(self, restriction_id: str, reason: str) -> Row:
        """End a block now; the record of it stays."""
        text = check_text(reason, "reason", max_length=1000)
        assert text is not None
        async with self._transaction() as tx:
            current = await tx.loaded(RESTRICTION, restriction_id, lock=True)
            await tx.decide(RESTRICTION, "lift", [(restriction_id, current)])
            if current is None:
                raise NotFound("no restriction with this id exists")
            row = await update_row(
                tx,
                RESTRICTION,
                restriction_id,
                {"lifted_at": datetime.now(UTC), "lifted_reason": text.strip()},
                sql("rs.lifted_at IS NULL"),
            )
            if row is None:
                raise BadUserInput("this restriction was lifted already", argument="id")
        return row

    async def create_note(
        self, patient_id: str, encounter_id: str | None, title: str, text: str, replaces: str | None = None
    ) -> Row:
        """A draft note by the caller, for a patient (and encounter) they care for."""
        _check_note(title, text)
        async with self._transaction() as tx:
            patient = await self._patient(tx, patient_id)
            if encounter_id is not None:
                await InputChecker(tx.conn, CLINICAL_NOTE, patient_id).reference(
                    KINDS["Encounter"], encounter_id, "encounterId"
                )
            return await self._insert_note(tx, patient, encounter_id, title, text, replaces)

    async def _insert_note(
        self, tx: WriteTransaction, patient: Row, encounter_id: str | None, title: str, text: str, replaces: str | None
    ) -> Row:
        patient_id = str(patient["id"])
        caring = set(patient_level(patient)["care_unit_ids"])
        units = [u for u in self._principal.unit_ids if u in caring] or list(self._principal.unit_ids)
        rid = str(uuid.uuid4())
        row = await insert_row(
            tx,
            CLINICAL_NOTE,
            {
                "id": rid,
                "patient_id": patient_id,
                "encounter_id": encounter_id,
                "owning_unit_id": units[0] if units else patient["owning_unit_id"],
                "status": "draft",
                "author_id": self._principal.id,
                "title": title.strip(),
                "text": text,
                "created_at": datetime.now(UTC),
                "replaces_id": replaces,
            },
        )
        await tx.decide(
            CLINICAL_NOTE, "create", [(rid, await tx.loaded(CLINICAL_NOTE, rid))], before=patient_level(patient)
        )
        return row

    async def _note(self, tx: WriteTransaction, note_id: str, action: str) -> Row:
        note = await tx.loaded(CLINICAL_NOTE, note_id, lock=True)
        await tx.decide(CLINICAL_NOTE, action, [(note_id, note)])
        if note is None:
            raise NotFound("no clinical note with this id exists")
        return note

    async def update_note(self, note_id: str, title: str | None, text: str | None) -> Row:
        """Edit a draft: its author only."""
        if title is None and text is None:
            raise BadUserInput("give a new title or text", argument="text")
        _check_note(title, text)
        async with self._transaction() as tx:
            await self._note(tx, note_id, "update")
            changes = {k: v for k, v in {"title": title and title.strip(), "text": text}.items() if v is not None}
            row = await update_row(tx, CLINICAL_NOTE, note_id, changes, sql("nt.status = 'draft'"))
            if row is None:
                raise BadUserInput("the note was signed meanwhile; write a correction instead", argument="id")
        return row

    async def sign_note(self, note_id: str) -> Row:
        """Sign a draft: from now on it never changes."""
        async with self._transaction() as tx:
            await self._note(tx, note_id, "sign")
            row = await update_row(
                tx,
                CLINICAL_NOTE,
                note_id,
                {"status": "signed", "signed_at": datetime.now(UTC)},
                sql("nt.status = 'draft'"),
            )
            if row is None:
                raise BadUserInput("the note was signed already", argument="id")
        return row

    async def correct_note(self, note_id: str, title: str, text: str) -> Row:
        """A correction of a signed note: a new draft version pointing back; the original stays as it was."""
        _check_note(title, text)
        async with self._transaction() as tx:
            original = await self._note(tx, note_id, "correct")
            patient = await self._patient(tx, str(original["patient_id"]))
            encounter = str(original["encounter_id"]) if original["encounter_id"] else None
            return await self._insert_note(tx, patient, encounter, title, text, note_id)

    @staticmethod
    def _validate(
        scope: str,
        reason: str,
        practitioner_id: str | None,
        organization_id: str | None,
        category: str | None,
        target_id: str | None,
        until: datetime | None,
    ) -> None:
        check_text(reason, "reason", max_length=1000)
        needs = {
            "person": practitioner_id,
            "unit": organization_id,
            "category": category,
            "item": target_id,
            "episode": target_id,
        }
        if scope in needs and needs[scope] is None:
            field = {"person": "practitionerId", "unit": "organizationId", "category": "category"}.get(
                scope, "targetId"
            )
            raise BadUserInput(f"a {scope} restriction needs {field}", argument=field)
        if category is not None and category not in DATA_CATEGORIES:
            raise BadUserInput(f"category must be one of {', '.join(sorted(DATA_CATEGORIES))}", argument="category")
        if until is not None and until <= datetime.now().astimezone():
            raise BadUserInput("`until` must lie in the future", argument="until")

    async def _check_target(
        self, tx: WriteTransaction, patient_id: str, target_kind: str, target_id: str, scope: str
    ) -> None:
        kind = KINDS.get(target_kind)
        if kind is None or not kind.is_patient_data or kind.patient_column != "patient_id":
            raise BadUserInput("targetId must be an item of the patient's journal", argument="targetId")
        if scope == "episode" and kind.name != "encounter":
            raise BadUserInput("an episode restriction targets an encounter", argument="targetId")
        try:
            await InputChecker(tx.conn, kind, patient_id).reference(kind, target_id, "targetId")
        except BadUserInput as exc:
            raise BadUserInput("targetId must be an item of this patient's journal", argument="targetId") from exc

    async def merge_municipalities(
        self, source_id: str, into_id: str, policy_scope: str | None, *, combine_units: bool, dry_run: bool
    ) -> tuple[Reorganization, bool]:
        """Merge one municipality into another (`merge` on both, decided by policy), or preview it: carried
        out and rolled back. Returns what was (or would be) done and whether it was applied."""

        async def change(tx: WriteTransaction) -> Reorganization:
            source, into = await find_municipality(tx.conn, source_id), await find_municipality(tx.conn, into_id)
            check_merge(source, into, policy_scope)
            await tx.decide_on(MUNICIPALITY, "merge", [(source.id, {}), (into.id, {})])
            reorganizer = Reorganizer(tx.conn, self._principal, self._authorizer.policy_version)
            return await reorganizer.merge(source, into, policy_scope, combine_units=combine_units)

        return await self._reorganize(change, dry_run, MUNICIPALITY.name, "merge", (source_id, into_id))

    async def move_unit(self, unit_id: str, to_id: str, *, dry_run: bool) -> tuple[Reorganization, bool]:
        """Move a unit (and those under it) to another municipality (`move`, decided by policy), or preview it."""

        async def change(tx: WriteTransaction) -> Reorganization:
            unit = await tx.loaded(ORGANIZATION, unit_id, lock=True)
            await tx.decide(ORGANIZATION, "move", [(unit_id, unit)])
            if unit is None:
                raise NotFound("no unit with this id exists")
            to = await find_municipality(tx.conn, to_id)
            found = {"id": unit_id, "name": unit["name"], "municipality_id": unit["attr_municipality_id"] or None}
            reorganizer = Reorganizer(tx.conn, self._principal, self._authorizer.policy_version)
            return await reorganizer.move_unit(found, to)

        return await self._reorganize(change, dry_run, ORGANIZATION.name, "move", (unit_id, to_id))

    async def _reorganize(
        self,
        change: Callable[[WriteTransaction], Awaitable[Reorganization]],
        dry_run: bool,
        kind: str,
        action: str,
        ids: tuple[str, ...],
    ) -> tuple[Reorganization, bool]:
        """Carry `change` out; a preview rolls it back and leaves one audit record of having been made."""
        try:
            async with self._transaction() as tx:
                done = await change(tx)
                if dry_run:
                    raise _Preview(done)
        except _Preview as preview:
            self._audit.record(AuditRecord(None, kind, ids, f"preview_{action}", True, REORGANIZATION))
            return preview.done, False
        return done, True
