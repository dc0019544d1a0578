"""Writes to the journal that the access rules themselves need: emergency access grants (akuttilgang)
and the patient's restrictions (sperring). Like reads, every write is authorized by Cerbos first and
audited; the SQL runs only after an allow, in one statement."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from gateway.audit import AuditRecord, AuditTrail
from gateway.auth import Principal
from gateway.authz import Authorizer
from gateway.declare import ResourceKind
from gateway.errors import BadUserInput, Forbidden, NotFound
from gateway.resources import CLINICAL_NOTE, EMERGENCY_GRANT, KINDS, PATIENT, RESTRICTION
from gateway.store import attributes_of, fetch, rows_by_id

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
_RESTRICTION_COLUMNS = ", ".join(f"rs.{c}" for c in RESTRICTION.columns)
_GRANT_COLUMNS = ", ".join(f"eg2.{c}" for c in EMERGENCY_GRANT.columns)
_NOTE_COLUMNS = ", ".join(f"nt.{c}" for c in CLINICAL_NOTE.columns)


def _check_note(title: str, text: str) -> None:
    if not 1 <= len(title.strip()) <= 200:
        raise BadUserInput("a note's title must be 1 to 200 characters", argument="title")
    if not 1 <= len(text.strip()) <= 20_000:
        raise BadUserInput("a note's text must be 1 to 20,000 characters", argument="text")


class JournalWrites:
    """Per-request door for the writes the access rules need."""

    def __init__(self, pool: asyncpg.Pool, authorizer: Authorizer, principal: Principal, audit: AuditTrail) -> None:
        self._pool = pool
        self._authorizer = authorizer
        self._principal = principal
        self._audit = audit

    async def _attributes(self, kind: ResourceKind, rid: str) -> tuple[dict[str, Any], str | None] | None:
        """A row's policy attributes and policy scope (its municipality), as reads load them."""
        rows = await fetch(self._pool, rows_by_id(kind, [rid]))
        if not rows:
            return None
        return attributes_of(kind, rows[0]), (rows[0]["_scope"] if kind.scope_sql else None)

    async def _decide(
        self,
        kind: ResourceKind,
        action: str,
        rid: str,
        attrs: dict[str, Any],
        patient: str,
        scope: str | None = None,
        emergency: bool = False,
    ) -> None:
        [decision] = await self._authorizer.check(self._principal, kind, action, [(rid, attrs)], [scope])
        self._audit.record(
            AuditRecord(patient, kind.name, (rid,), action, decision.allowed, decision.reason, emergency)
        )
        if not decision.allowed:
            raise Forbidden(
                f"you may not {action.replace('_', ' ')} here",
                reason=decision.reason,
                policyVersion=self._authorizer.policy_version,
            )

    async def request_emergency_access(
        self, patient_id: str, reason: str, life_or_health_at_risk: bool
    ) -> asyncpg.Record:
        """A time-limited grant to read a patient's record without a care relation, flagged for review."""
        if not 10 <= len(reason.strip()) <= 1000:
            raise BadUserInput("state the reason for emergency access in 10 to 1000 characters", argument="reason")
        if self._principal.kind != "personnel":
            raise Forbidden("only personnel may request emergency access", reason="ROLE_CATEGORY")
        loaded = await self._attributes(PATIENT, patient_id)
        if loaded is None:
            raise NotFound("no patient with this id exists")
        attrs, scope = loaded
        await self._decide(PATIENT, "request_emergency_access", patient_id, attrs, patient_id, scope, emergency=True)
        now = datetime.now().astimezone()
        row = await self._pool.fetchrow(
            f"""INSERT INTO emergency_grant AS eg2 (id, patient_id, practitioner_id, reason, life_or_health_at_risk,
                                                    granted_at, expires_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_GRANT_COLUMNS}""",
            uuid.uuid4(),
            uuid.UUID(patient_id),
            uuid.UUID(self._principal.id),
            reason.strip(),
            life_or_health_at_risk,
            now,
            now + timedelta(hours=EMERGENCY_ACCESS_HOURS),
        )
        assert row is not None
        return row

    async def review_emergency_access(self, grant_id: str, conclusion: str) -> asyncpg.Record:
        """Record the after-the-fact review of an emergency access."""
        if not 3 <= len(conclusion.strip()) <= 2000:
            raise BadUserInput("a review needs a conclusion of 3 to 2000 characters", argument="conclusion")
        row = await self._pool.fetchrow(
            f"SELECT {_GRANT_COLUMNS} FROM emergency_grant eg2 WHERE eg2.id = $1::uuid", grant_id
        )
        if row is None:
            raise NotFound("no emergency grant with this id exists")
        attrs = {
            "patient_id": str(row["patient_id"]),
            "practitioner_id": str(row["practitioner_id"]),
            "reviewed": row["reviewed_at"] is not None,
        }
        await self._decide(EMERGENCY_GRANT, "review", grant_id, attrs, str(row["patient_id"]))
        updated = await self._pool.fetchrow(
            f"""UPDATE emergency_grant eg2 SET reviewed_at = now(), reviewed_by = $2, review_conclusion = $3
                 WHERE eg2.id = $1 AND eg2.reviewed_at IS NULL RETURNING {_GRANT_COLUMNS}""",
            uuid.UUID(grant_id),
            self._principal.id,
            conclusion.strip(),
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
    ) -> asyncpg.Record:
        """Record a patient's block; it denies access from the next request on."""
        self._validate(scope, reason, practitioner_id, organization_id, category, target_id, until)
        loaded = await self._attributes(PATIENT, patient_id)
        if loaded is None:
            raise NotFound("no patient with this id exists")
        attrs, policy_scope = loaded
        if scope == "guardians" and not 12 <= int(attrs["patient_age"]) < 18:
            raise BadUserInput("only a child aged 12 to 17 can restrict what their parents see", argument="scope")
        if target_id is not None:
            await self._check_target(patient_id, target_kind or "", target_id, scope)
        rid = str(uuid.uuid4())
        await self._decide(
            RESTRICTION,
            "create",
            rid,
            {**attrs, "data_category": "restriction", "category": "restriction", "withheld_from_patient": False},
            patient_id,
            policy_scope,
        )
        now = datetime.now().astimezone()
        row = await self._pool.fetchrow(
            f"""INSERT INTO restriction AS rs (id, patient_id, owning_unit_id, scope, target_kind, target_id,
                                               target_category, target_practitioner_id, target_unit_id, reason,
                                               period_start, period_end, created_at)
                SELECT $1, p.id, p.owning_unit_id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $10
                  FROM patient p WHERE p.id = $2
                RETURNING {_RESTRICTION_COLUMNS}""",
            uuid.UUID(rid),
            uuid.UUID(patient_id),
            scope,
            target_kind,
            target_id and uuid.UUID(target_id),
            category,
            practitioner_id and uuid.UUID(practitioner_id),
            organization_id and uuid.UUID(organization_id),
            reason.strip(),
            now,
            until,
        )
        assert row is not None
        return row

    async def lift_restriction(self, restriction_id: str, reason: str) -> asyncpg.Record:
        """End a block now; the record of it stays."""
        if not reason.strip():
            raise BadUserInput("say why the restriction is lifted", argument="reason")
        loaded = await self._attributes(RESTRICTION, restriction_id)
        if loaded is None:
            raise NotFound("no restriction with this id exists")
        attrs, scope = loaded
        await self._decide(RESTRICTION, "lift", restriction_id, attrs, str(attrs["patient_id"]), scope)
        row = await self._pool.fetchrow(
            f"""UPDATE restriction rs SET lifted_at = now(), lifted_reason = $2
                 WHERE rs.id = $1 AND rs.lifted_at IS NULL RETURNING {_RESTRICTION_COLUMNS}""",
            uuid.UUID(restriction_id),
            reason.strip(),
        )
        if row is None:
            raise BadUserInput("this restriction was lifted already", argument="id")
        return row

    async def create_note(
        self, patient_id: str, encounter_id: str | None, title: str, text: str, replaces: str | None = None
    ) -> asyncpg.Record:
        """A draft note by the caller, for a patient (and encounter) they care for."""
        _check_note(title, text)
        loaded = await self._attributes(PATIENT, patient_id)
        if loaded is None:
            raise NotFound("no patient with this id exists")
        attrs, scope = loaded
        if encounter_id is not None:
            await self._check_target(patient_id, "Encounter", encounter_id, "item")
        rid = str(uuid.uuid4())
        note = {
            **attrs,
            "data_category": "clinical-note",
            "category": "clinical-note",
            "withheld_from_patient": False,
            "author_id": self._principal.id,
            "status": "draft",
        }
        await self._decide(CLINICAL_NOTE, "create", rid, note, patient_id, scope)
        return await self._insert_note(rid, patient_id, encounter_id, title, text, replaces)

    async def _insert_note(
        self, rid: str, patient_id: str, encounter_id: str | None, title: str, text: str, replaces: str | None
    ) -> asyncpg.Record:
        unit = self._principal.unit_ids[0] if self._principal.unit_ids else None
        row = await self._pool.fetchrow(
            f"""INSERT INTO clinical_note AS nt (id, patient_id, encounter_id, owning_unit_id, status, author_id, title,
                                                 text, created_at, replaces_id)
                SELECT $1, p.id, $3, coalesce($4::uuid, p.owning_unit_id), 'draft', $5, $6, $7, now(), $8
                  FROM patient p WHERE p.id = $2
                RETURNING {_NOTE_COLUMNS}""",
            uuid.UUID(rid),
            uuid.UUID(patient_id),
            encounter_id and uuid.UUID(encounter_id),
            unit,
            uuid.UUID(self._principal.id),
            title.strip(),
            text,
            replaces and uuid.UUID(replaces),
        )
        assert row is not None
        return row

    async def _note(self, note_id: str, action: str) -> dict[str, Any]:
        loaded = await self._attributes(CLINICAL_NOTE, note_id)
        if loaded is None:
            raise NotFound("no clinical note with this id exists")
        attrs, scope = loaded
        await self._decide(CLINICAL_NOTE, action, note_id, attrs, str(attrs["patient_id"]), scope)
        return attrs

    async def update_note(self, note_id: str, title: str | None, text: str | None) -> asyncpg.Record:
        """Edit a draft: its author only."""
        if title is None and text is None:
            raise BadUserInput("give a new title or text", argument="text")
        await self._note(note_id, "update")
        if title is not None or text is not None:
            _check_note(title if title is not None else "x", text if text is not None else "x")
        row = await self._pool.fetchrow(
            f"""UPDATE clinical_note nt SET title = coalesce($2, nt.title), text = coalesce($3, nt.text)
                 WHERE nt.id = $1 AND nt.status = 'draft' RETURNING {_NOTE_COLUMNS}""",
            uuid.UUID(note_id),
            title and title.strip(),
            text,
        )
        if row is None:
            raise BadUserInput("the note was signed meanwhile; write a correction instead", argument="id")
        return row

    async def sign_note(self, note_id: str) -> asyncpg.Record:
        """Sign a draft: from now on it never changes."""
        await self._note(note_id, "sign")
        row = await self._pool.fetchrow(
            f"""UPDATE clinical_note nt SET status = 'signed', signed_at = now()
                 WHERE nt.id = $1 AND nt.status = 'draft' RETURNING {_NOTE_COLUMNS}""",
            uuid.UUID(note_id),
        )
        if row is None:
            raise BadUserInput("the note was signed already", argument="id")
        return row

    async def correct_note(self, note_id: str, title: str, text: str) -> asyncpg.Record:
        """A correction of a signed note: a new draft version pointing back; the original stays as it was."""
        _check_note(title, text)
        attrs = await self._note(note_id, "correct")
        original = await self._pool.fetchrow("SELECT encounter_id FROM clinical_note WHERE id = $1", uuid.UUID(note_id))
        assert original is not None
        encounter = str(original["encounter_id"]) if original["encounter_id"] else None
        return await self._insert_note(str(uuid.uuid4()), str(attrs["patient_id"]), encounter, title, text, note_id)

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
        if not reason.strip() or len(reason) > 1000:
            raise BadUserInput("a restriction needs a reason of 1 to 1000 characters", argument="reason")
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

    async def _check_target(self, patient_id: str, target_kind: str, target_id: str, scope: str) -> None:
        kind = KINDS.get(target_kind)
        if kind is None or not kind.is_patient_data or kind.patient_column != "patient_id":
            raise BadUserInput("targetId must be an item of the patient's journal", argument="targetId")
        if scope == "episode" and kind.name != "encounter":
            raise BadUserInput("an episode restriction targets an encounter", argument="targetId")
        owner = await self._pool.fetchval(f"SELECT patient_id FROM {kind.table} WHERE id = $1::uuid", target_id)
        if owner is None or str(owner) != patient_id:
            raise BadUserInput("targetId must be an item of this patient's journal", argument="targetId")
