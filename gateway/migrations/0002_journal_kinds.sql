-- Every kind of journal data, FHIR-aligned, and the code tables the journal uses.
-- The policy data category moves to its own column, `data_category`, on every patient-data table, so
-- that a resource's FHIR `category` (e.g. an observation's vital-signs/laboratory) keeps its meaning.

ALTER TABLE patient RENAME COLUMN category TO data_category;
ALTER TABLE care_relation RENAME COLUMN category TO data_category;
ALTER TABLE encounter RENAME COLUMN category TO data_category;
ALTER TABLE observation ADD COLUMN data_category text NOT NULL DEFAULT 'clinical';

-- Code tables: small real subsets of ICPC-2, ICD-10, LOINC and ATC (reference data, like organizations).
CREATE TABLE code_concept (
    system text NOT NULL,
    code text NOT NULL,
    display text NOT NULL,
    kind text NOT NULL,
    sensitive boolean NOT NULL DEFAULT false,
    PRIMARY KEY (system, code)
);

CREATE TABLE diagnostic_report (
    id uuid PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES patient (id),
    encounter_id uuid REFERENCES encounter (id),
    owning_unit_id uuid NOT NULL REFERENCES organization (id),
    data_category text NOT NULL DEFAULT 'clinical',
    category text NOT NULL CHECK (category IN ('laboratory', 'radiology')),
    status text NOT NULL CHECK (status IN ('registered', 'partial', 'preliminary', 'final', 'amended', 'cancelled')),
    code_system text NOT NULL,
    code text NOT NULL,
    code_display text NOT NULL,
    effective_at timestamptz NOT NULL,
    issued_at timestamptz NOT NULL,
    performer_id uuid REFERENCES practitioner (id),
    conclusion text
);
CREATE INDEX diagnostic_report_patient_idx ON diagnostic_report (patient_id, effective_at DESC, id);
CREATE INDEX diagnostic_report_encounter_idx ON diagnostic_report (encounter_id, effective_at DESC, id);

ALTER TABLE observation ADD COLUMN diagnostic_report_id uuid REFERENCES diagnostic_report (id);
CREATE INDEX observation_report_idx ON observation (diagnostic_report_id, effective_at DESC, id)
    WHERE diagnostic_report_id IS NOT NULL;
DROP INDEX observation_encounter_idx;
CREATE INDEX observation_encounter_idx ON observation (encounter_id, effective_at DESC, id);
DROP INDEX observation_code_effective_idx;
CREATE INDEX observation_code_effective_idx ON observation (code, effective_at DESC, id);
CREATE INDEX observation_effective_idx ON observation (effective_at DESC, id);

CREATE TABLE condition (
    id uuid PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES patient (id),
    encounter_id uuid REFERENCES encounter (id),
    owning_unit_id uuid NOT NULL REFERENCES organization (id),
    data_category text NOT NULL CHECK (data_category IN ('clinical', 'sensitive')),
    category text NOT NULL CHECK (category IN ('problem-list-item', 'encounter-diagnosis')),
    clinical_status text NOT NULL CHECK (clinical_status IN ('active', 'recurrence', 'relapse', 'inactive', 'remission', 'resolved')),
    verification_status text NOT NULL CHECK (verification_status IN ('unconfirmed', 'provisional', 'differential', 'confirmed', 'refuted')),
    code_system text NOT NULL,
    code text NOT NULL,
    code_display text NOT NULL,
    onset_date date,
    abatement_date date,
    recorded_at timestamptz NOT NULL,
    recorder_id uuid REFERENCES practitioner (id)
);
CREATE INDEX condition_patient_idx ON condition (patient_id, recorded_at DESC, id);

CREATE TABLE medication_statement (
    id uuid PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES patient (id),
    owning_unit_id uuid NOT NULL REFERENCES organization (id),
    data_category text NOT NULL DEFAULT 'medication',
    status text NOT NULL CHECK (status IN ('active', 'completed', 'entered-in-error', 'intended', 'stopped', 'on-hold')),
    code_system text NOT NULL,
    code text NOT NULL,
    code_display text NOT NULL,
    dosage text NOT NULL,
    effective_start date NOT NULL,
    effective_end date,
    date_asserted timestamptz NOT NULL,
    information_source_id uuid REFERENCES practitioner (id)
);
CREATE INDEX medication_statement_patient_idx ON medication_statement (patient_id, date_asserted DESC, id);

CREATE TABLE allergy_intolerance (
    id uuid PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES patient (id),
    owning_unit_id uuid NOT NULL REFERENCES organization (id),
    data_category text NOT NULL DEFAULT 'critical-information',
    clinical_status text NOT NULL CHECK (clinical_status IN ('active', 'inactive', 'resolved')),
    category text NOT NULL CHECK (category IN ('food', 'medication', 'environment', 'biologic')),
    criticality text NOT NULL CHECK (criticality IN ('low', 'high', 'unable-to-assess')),
    code_system text NOT NULL,
    code text NOT NULL,
    code_display text NOT NULL,
    reaction text,
    recorded_at timestamptz NOT NULL,
    recorder_id uuid REFERENCES practitioner (id)
);
CREATE INDEX allergy_intolerance_patient_idx ON allergy_intolerance (patient_id, recorded_at DESC, id);

CREATE TABLE clinical_note (
    id uuid PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES patient (id),
    encounter_id uuid REFERENCES encounter (id),
    owning_unit_id uuid NOT NULL REFERENCES organization (id),
    data_category text NOT NULL DEFAULT 'clinical-note',
    status text NOT NULL CHECK (status IN ('draft', 'signed', 'entered-in-error')),
    author_id uuid NOT NULL REFERENCES practitioner (id),
    title text NOT NULL,
    text text NOT NULL,
    created_at timestamptz NOT NULL,
    signed_at timestamptz,
    replaces_id uuid REFERENCES clinical_note (id),
    CHECK ((status = 'signed') = (signed_at IS NOT NULL) OR status = 'entered-in-error')
);
CREATE INDEX clinical_note_patient_idx ON clinical_note (patient_id, created_at DESC, id);
CREATE INDEX clinical_note_encounter_idx ON clinical_note (encounter_id, created_at DESC, id);

CREATE TABLE care_plan (
    id uuid PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES patient (id),
    owning_unit_id uuid NOT NULL REFERENCES organization (id),
    data_category text NOT NULL DEFAULT 'clinical',
    status text NOT NULL CHECK (status IN ('draft', 'active', 'on-hold', 'revoked', 'completed')),
    intent text NOT NULL DEFAULT 'plan',
    title text NOT NULL,
    description text NOT NULL,
    period_start date NOT NULL,
    period_end date,
    author_id uuid REFERENCES practitioner (id),
    created_at timestamptz NOT NULL
);
CREATE INDEX care_plan_patient_idx ON care_plan (patient_id, created_at DESC, id);

CREATE TABLE appointment (
    id uuid PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES patient (id),
    owning_unit_id uuid NOT NULL REFERENCES organization (id),
    data_category text NOT NULL DEFAULT 'administrative',
    practitioner_id uuid REFERENCES practitioner (id),
    status text NOT NULL CHECK (status IN ('proposed', 'booked', 'arrived', 'fulfilled', 'cancelled', 'noshow')),
    service_type text NOT NULL,
    description text NOT NULL,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    CHECK (end_at > start_at)
);
CREATE INDEX appointment_patient_idx ON appointment (patient_id, start_at DESC, id);

-- Sperring: a patient's block on an item, a category, an episode, a person or a unit.
CREATE TABLE restriction (
    id uuid PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES patient (id),
    owning_unit_id uuid NOT NULL REFERENCES organization (id),
    data_category text NOT NULL DEFAULT 'restriction',
    scope text NOT NULL CHECK (scope IN ('item', 'category', 'episode', 'person', 'unit')),
    target_kind text,
    target_id uuid,
    target_category text,
    target_practitioner_id uuid REFERENCES practitioner (id),
    target_unit_id uuid REFERENCES organization (id),
    reason text NOT NULL,
    period_start timestamptz NOT NULL,
    period_end timestamptz,
    created_at timestamptz NOT NULL
);
CREATE INDEX restriction_patient_idx ON restriction (patient_id, created_at DESC, id);

CREATE INDEX encounter_practitioner_idx ON encounter (practitioner_id);
CREATE INDEX patient_municipality_idx ON patient (municipality_id);
