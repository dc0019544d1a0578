-- The core journal store: organization, personnel, patients, care relations, encounters, observations
-- and the audit log. Every patient-data table carries patient_id, its owning unit and a data category
-- as NOT NULL columns: the authorization filter is SQL over these columns, and a later move to Citus
-- (distributed by patient_id) stays possible.

CREATE TABLE municipality (
    id uuid PRIMARY KEY,
    number text NOT NULL UNIQUE CHECK (number ~ '^[0-9]{4}$'),
    name text NOT NULL
);

CREATE TABLE organization (
    id uuid PRIMARY KEY,
    municipality_id uuid NOT NULL REFERENCES municipality (id),
    org_number text NOT NULL UNIQUE CHECK (org_number ~ '^[0-9]{9}$'),
    name text NOT NULL,
    unit_type text NOT NULL CHECK (unit_type IN
        ('legevakt', 'fastlegekontor', 'hjemmetjeneste', 'sykehjem', 'helsestasjon'))
);
CREATE INDEX organization_municipality_idx ON organization (municipality_id);

CREATE TABLE practitioner (
    id uuid PRIMARY KEY,
    national_id text NOT NULL UNIQUE CHECK (national_id ~ '^[0-9]{11}$'),
    hpr_number text UNIQUE CHECK (hpr_number ~ '^[0-9]{7,9}$'),
    family_name text NOT NULL,
    given_name text NOT NULL
);

CREATE TABLE practitioner_role (
    id uuid PRIMARY KEY,
    practitioner_id uuid NOT NULL REFERENCES practitioner (id),
    organization_id uuid NOT NULL REFERENCES organization (id),
    role text NOT NULL CHECK (role IN
        ('doctor', 'nurse', 'health_secretary', 'physiotherapist', 'public_health_nurse', 'care_worker')),
    period_start date NOT NULL,
    period_end date,
    CHECK (period_end IS NULL OR period_end >= period_start)
);
CREATE INDEX practitioner_role_practitioner_idx ON practitioner_role (practitioner_id);
CREATE INDEX practitioner_role_organization_idx ON practitioner_role (organization_id);

CREATE TABLE patient (
    id uuid PRIMARY KEY,
    national_id text NOT NULL UNIQUE CHECK (national_id ~ '^[0-9]{11}$'),
    family_name text NOT NULL,
    given_name text NOT NULL,
    birth_date date NOT NULL,
    gender text NOT NULL CHECK (gender IN ('male', 'female', 'other', 'unknown')),
    municipality_id uuid NOT NULL REFERENCES municipality (id),
    owning_unit_id uuid NOT NULL REFERENCES organization (id),
    category text NOT NULL DEFAULT 'demographics'
);
CREATE INDEX patient_name_order_idx ON patient (family_name, given_name, id);
CREATE INDEX patient_owning_unit_idx ON patient (owning_unit_id);

-- A treatment relationship between a patient and a unit, optionally with one practitioner.
CREATE TABLE care_relation (
    id uuid PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES patient (id),
    organization_id uuid NOT NULL REFERENCES organization (id),
    practitioner_id uuid REFERENCES practitioner (id),
    purpose text NOT NULL,
    period_start timestamptz NOT NULL,
    period_end timestamptz,
    owning_unit_id uuid NOT NULL REFERENCES organization (id),
    category text NOT NULL DEFAULT 'administrative',
    CHECK (period_end IS NULL OR period_end >= period_start)
);
CREATE INDEX care_relation_patient_idx ON care_relation (patient_id, organization_id);
CREATE INDEX care_relation_organization_idx ON care_relation (organization_id, patient_id);
CREATE INDEX care_relation_practitioner_idx ON care_relation (practitioner_id, patient_id)
    WHERE practitioner_id IS NOT NULL;

CREATE TABLE encounter (
    id uuid PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES patient (id),
    owning_unit_id uuid NOT NULL REFERENCES organization (id),
    category text NOT NULL DEFAULT 'clinical',
    practitioner_id uuid REFERENCES practitioner (id),
    class_code text NOT NULL CHECK (class_code IN ('AMB', 'HH', 'EMER', 'VR', 'IMP')),
    status text NOT NULL CHECK (status IN ('planned', 'in-progress', 'finished', 'cancelled')),
    period_start timestamptz NOT NULL,
    period_end timestamptz
);
CREATE INDEX encounter_patient_start_idx ON encounter (patient_id, period_start DESC, id);

CREATE TABLE observation (
    id uuid PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES patient (id),
    encounter_id uuid REFERENCES encounter (id),
    owning_unit_id uuid NOT NULL REFERENCES organization (id),
    category text NOT NULL CHECK (category IN ('vital-signs', 'laboratory')),
    status text NOT NULL CHECK (status IN ('preliminary', 'final', 'amended', 'cancelled')),
    code_system text NOT NULL,
    code text NOT NULL,
    code_display text NOT NULL,
    value_quantity numeric,
    value_unit text,
    effective_at timestamptz NOT NULL
);
CREATE INDEX observation_patient_effective_idx ON observation (patient_id, effective_at DESC, id);
CREATE INDEX observation_encounter_idx ON observation (encounter_id, effective_at DESC);
CREATE INDEX observation_code_effective_idx ON observation (code, effective_at DESC);

-- One row per patient, resource kind and decision of a request: who, through which app, why, and
-- what the policy said. Written before the response leaves the gateway.
CREATE TABLE audit_event (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    request_id uuid NOT NULL,
    trace_id text,
    actor_kind text NOT NULL CHECK (actor_kind IN ('personnel', 'citizen', 'service')),
    actor_id text NOT NULL,
    actor_hpr_number text,
    actor_unit_ids uuid[] NOT NULL DEFAULT '{}',
    client_id text NOT NULL,
    patient_id uuid,
    resource_kind text NOT NULL,
    resource_ids text[] NOT NULL DEFAULT '{}',
    action text NOT NULL,
    purpose_of_use text,
    self_attested boolean NOT NULL DEFAULT false,
    emergency boolean NOT NULL DEFAULT false,
    decision text NOT NULL CHECK (decision IN ('ALLOW', 'DENY')),
    reason text,
    policy_version text NOT NULL
);
CREATE INDEX audit_event_patient_idx ON audit_event (patient_id, recorded_at DESC);
CREATE INDEX audit_event_request_idx ON audit_event (request_id);
