-- Writes through the API (issue 13): every resource keeps its versions, says who made each one and through
-- which app, and may be marked entered-in-error (a journal never deletes); retried writes are recognised by
-- their idempotency key; laboratories, radiology and hospital departments join the directory as units,
-- and a backend service's approval names the unit it acts for.

-- Who is writing: the gateway sets these for the transaction of a write (`akson.actor` as kind:id, and
-- `akson.app` the client id); rows written outside the API (migrations, the seeder) leave them empty.
CREATE FUNCTION journal_actor() RETURNS text LANGUAGE sql STABLE AS
    $$ SELECT nullif(current_setting('akson.actor', true), '') $$;
CREATE FUNCTION journal_app() RETURNS text LANGUAGE sql STABLE AS
    $$ SELECT nullif(current_setting('akson.app', true), '') $$;

-- Earlier versions of every resource, as they were, with who made them, when and through which app.
CREATE TABLE resource_version (
    resource_kind text NOT NULL,
    resource_id uuid NOT NULL,
    version integer NOT NULL,
    patient_id uuid,
    change text NOT NULL CHECK (change IN ('created', 'updated', 'entered-in-error')),
    recorded_at timestamptz NOT NULL,
    recorded_by text,
    recorded_app text,
    superseded_at timestamptz NOT NULL,
    data jsonb NOT NULL,
    PRIMARY KEY (resource_id, version)
);
CREATE INDEX resource_version_patient_idx ON resource_version (patient_id, superseded_at DESC) WHERE patient_id IS NOT NULL;

-- Every update keeps the row as it was and numbers the new version; who and which app come from the
-- transaction's settings, so no write can change a row without saying who made the change.
CREATE FUNCTION journal_keep_version() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    before jsonb := to_jsonb(OLD);
    after jsonb := to_jsonb(NEW);
BEGIN
    IF NEW.id <> OLD.id THEN
        RAISE EXCEPTION 'a resource never changes its id';
    END IF;
    INSERT INTO resource_version (resource_kind, resource_id, version, patient_id, change, recorded_at, recorded_by,
                                  recorded_app, superseded_at, data)
    VALUES (TG_TABLE_NAME, OLD.id, OLD.version, (before ->> TG_ARGV[0])::uuid, OLD.last_change, OLD.last_updated,
            OLD.updated_by, OLD.updated_app, clock_timestamp(), before);
    NEW.version := OLD.version + 1;
    NEW.last_updated := clock_timestamp();
    NEW.created_by := OLD.created_by;
    NEW.updated_by := journal_actor();
    NEW.updated_app := journal_app();
    NEW.last_change := CASE
        WHEN after ->> 'entered_in_error_at' IS NOT NULL AND before ->> 'entered_in_error_at' IS NULL
        THEN 'entered-in-error' ELSE 'updated' END;
    RETURN NEW;
END $$;

DO $$
DECLARE
    t text;
    patient text;
BEGIN
    FOREACH t IN ARRAY ARRAY['organization', 'practitioner', 'practitioner_role', 'patient', 'care_relation',
                             'encounter', 'observation', 'diagnostic_report', 'condition', 'medication_statement',
                             'allergy_intolerance', 'clinical_note', 'care_plan', 'appointment', 'restriction',
                             'emergency_grant']
    LOOP
        -- Existing rows get the time of this migration without rewriting the table; new rows their own.
        EXECUTE format('ALTER TABLE %I ADD COLUMN version integer NOT NULL DEFAULT 1', t);
        EXECUTE format('ALTER TABLE %I ADD COLUMN last_updated timestamptz NOT NULL DEFAULT now()', t);
        EXECUTE format('ALTER TABLE %I ALTER COLUMN last_updated SET DEFAULT clock_timestamp()', t);
        EXECUTE format('ALTER TABLE %I ADD COLUMN last_change text NOT NULL DEFAULT ''created''', t);
        EXECUTE format('ALTER TABLE %I ADD COLUMN created_by text DEFAULT journal_actor()', t);
        EXECUTE format('ALTER TABLE %I ADD COLUMN updated_by text DEFAULT journal_actor()', t);
        EXECUTE format('ALTER TABLE %I ADD COLUMN updated_app text DEFAULT journal_app()', t);
        patient := CASE WHEN t = 'patient' THEN 'id'
                        WHEN t IN ('organization', 'practitioner', 'practitioner_role') THEN 'no_patient'
                        ELSE 'patient_id' END;
        EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION journal_keep_version(%L)',
                       t || '_keep_version', t, patient);
    END LOOP;
    -- Patient data may be marked entered in error: kept, and hidden from lists unless asked for.
    FOREACH t IN ARRAY ARRAY['patient', 'care_relation', 'encounter', 'observation', 'diagnostic_report', 'condition',
                             'medication_statement', 'allergy_intolerance', 'clinical_note', 'care_plan',
                             'appointment', 'restriction']
    LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN entered_in_error_at timestamptz', t);
        EXECUTE format('ALTER TABLE %I ADD COLUMN entered_in_error_reason text', t);
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK ((entered_in_error_at IS NULL) = '
                       '(entered_in_error_reason IS NULL))', t, t || '_entered_in_error_explained');
    END LOOP;
END $$;

-- Contact details a health secretary keeps up to date.
ALTER TABLE patient ADD COLUMN phone text CHECK (phone ~ '^\+?[0-9 ]{5,20}$');
ALTER TABLE patient ADD COLUMN email text CHECK (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$');
ALTER TABLE patient ADD COLUMN address text CHECK (length(address) BETWEEN 1 AND 300);

-- Home measurements a patient (or parent) reports, marked as such wherever they are shown.
ALTER TABLE observation ADD COLUMN patient_reported boolean NOT NULL DEFAULT false;

-- Units outside the municipal services: laboratories, radiology and hospital departments (of a health
-- trust, so of no municipality).
ALTER TABLE organization DROP CONSTRAINT organization_unit_type_check;
ALTER TABLE organization ADD CONSTRAINT organization_unit_type_check CHECK (unit_type IN
    ('legevakt', 'fastlegekontor', 'hjemmetjeneste', 'sykehjem', 'helsestasjon',
     'laboratorium', 'radiologi', 'sykehusavdeling'));
ALTER TABLE organization ALTER COLUMN municipality_id DROP NOT NULL;
ALTER TABLE organization ADD CONSTRAINT organization_municipal_units_have_a_municipality CHECK
    (municipality_id IS NOT NULL OR unit_type IN ('laboratorium', 'radiologi', 'sykehusavdeling'));

-- A delivered report names who asked for it and the unit that produced it.
ALTER TABLE diagnostic_report ADD COLUMN requester_unit_id uuid REFERENCES organization (id);
ALTER TABLE diagnostic_report ADD COLUMN requester_practitioner_id uuid REFERENCES practitioner (id);
ALTER TABLE diagnostic_report ADD COLUMN performer_organization_id uuid REFERENCES organization (id);

-- The unit a backend service acts for (its data-processing agreement), named when it is approved.
ALTER TABLE app ADD COLUMN acting_unit_id uuid REFERENCES organization (id);

-- The UCUM unit a code's values are measured in, where the code has one.
ALTER TABLE code_concept ADD COLUMN unit text;
UPDATE code_concept SET unit = u.unit
  FROM (VALUES ('8480-6', 'mm[Hg]'), ('8462-4', 'mm[Hg]'), ('8867-4', '/min'), ('8310-5', 'Cel'),
               ('59408-5', '%'), ('29463-7', 'kg'), ('9279-1', '/min'), ('8302-2', 'cm'), ('1988-5', 'mg/L'),
               ('4548-4', '%'), ('718-7', 'g/dL'), ('2160-0', 'mg/dL'), ('2823-3', 'mmol/L'), ('2951-2', 'mmol/L'),
               ('6690-2', '10*3/uL'), ('777-3', '10*3/uL'), ('2093-3', 'mg/dL'), ('2085-9', 'mg/dL'),
               ('13457-7', 'mg/dL'), ('2571-8', 'mg/dL'), ('1742-6', 'U/L'), ('2345-7', 'mg/dL')) AS u (code, unit)
 WHERE code_concept.system = 'http://loinc.org' AND code_concept.code = u.code;

-- A retried write with the same key (per app) returns the first result and writes nothing more.
CREATE TABLE idempotency_key (
    client_id text NOT NULL,
    key text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    request_hash text NOT NULL,
    resource_kind text NOT NULL,
    resource_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (client_id, key)
);

-- The gateway's role writes the journal (never deletes), reads versions, and keeps idempotency keys.
GRANT INSERT, UPDATE ON patient, care_relation, encounter, observation, diagnostic_report, condition,
    medication_statement, allergy_intolerance, clinical_note, care_plan, appointment, restriction, emergency_grant
    TO akson_gateway;
GRANT SELECT ON resource_version TO akson_gateway;
GRANT SELECT, INSERT, UPDATE ON idempotency_key TO akson_gateway;
