-- What the national access rules need beyond care relations (DESIGN.md rules 3 to 5).

-- Harm exception: a clinician may withhold an item from the patient (and their parents); the
-- withholding itself is recorded with who and why.
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['care_relation', 'encounter', 'observation', 'diagnostic_report', 'condition',
                             'medication_statement', 'allergy_intolerance', 'clinical_note', 'care_plan',
                             'appointment', 'restriction']
    LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN withheld_from_patient boolean NOT NULL DEFAULT false', t);
        EXECUTE format('ALTER TABLE %I ADD COLUMN withheld_by uuid REFERENCES practitioner (id)', t);
        EXECUTE format('ALTER TABLE %I ADD COLUMN withheld_reason text', t);
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (NOT withheld_from_patient OR '
                       '(withheld_by IS NOT NULL AND withheld_reason IS NOT NULL))', t, t || '_withholding_recorded');
    END LOOP;
END $$;
ALTER TABLE patient ADD COLUMN withheld_from_patient boolean NOT NULL DEFAULT false;

-- A child aged 12 to 16 may restrict what their parents see: scope 'guardians'.
ALTER TABLE restriction DROP CONSTRAINT restriction_scope_check;
ALTER TABLE restriction ADD CONSTRAINT restriction_scope_check
    CHECK (scope IN ('item', 'category', 'episode', 'person', 'unit', 'guardians'));
ALTER TABLE restriction ADD COLUMN lifted_at timestamptz;
ALTER TABLE restriction ADD COLUMN lifted_reason text;
CREATE INDEX restriction_active_idx ON restriction (patient_id) WHERE lifted_at IS NULL;

-- Emergency access (akuttilgang): time-limited, flagged, reviewed afterwards, shown to the patient.
CREATE TABLE emergency_grant (
    id uuid PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES patient (id),
    practitioner_id uuid NOT NULL REFERENCES practitioner (id),
    reason text NOT NULL CHECK (length(reason) BETWEEN 10 AND 1000),
    life_or_health_at_risk boolean NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    reviewed_at timestamptz,
    reviewed_by text,
    review_conclusion text,
    CHECK (expires_at > granted_at)
);
CREATE INDEX emergency_grant_patient_idx ON emergency_grant (patient_id, expires_at DESC);
CREATE INDEX emergency_grant_review_idx ON emergency_grant (granted_at) WHERE reviewed_at IS NULL;
