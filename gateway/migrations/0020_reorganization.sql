-- Base data and change (issue 19): units for cooperation outside health care, personnel who are not health
-- personnel, directory administrators, and municipal mergers that keep the past as it was.

-- Units of the services the journal cooperates with: Nav offices and child welfare (municipal services).
ALTER TABLE organization DROP CONSTRAINT organization_unit_type_check;
ALTER TABLE organization ADD CONSTRAINT organization_unit_type_check CHECK (unit_type IN
    ('legevakt', 'fastlegekontor', 'hjemmetjeneste', 'sykehjem', 'helsestasjon',
     'laboratorium', 'radiologi', 'sykehusavdeling', 'nav', 'barnevern'));

-- People with a work-related need who are not health personnel (no HPR number), and their roles.
ALTER TABLE practitioner ADD COLUMN health_personnel boolean NOT NULL DEFAULT true,
    ADD CONSTRAINT practitioner_hpr_only_for_health_personnel CHECK (health_personnel OR hpr_number IS NULL);
ALTER TABLE practitioner_role DROP CONSTRAINT practitioner_role_role_check;
ALTER TABLE practitioner_role ADD CONSTRAINT practitioner_role_role_check CHECK (role IN
    ('doctor', 'nurse', 'health_secretary', 'physiotherapist', 'public_health_nurse', 'care_worker',
     'social_worker', 'nav_advisor', 'child_welfare_worker'));

-- Who keeps the directory: a municipality's own administrator (its units and their staff), and a national
-- directory administrator (units of no municipality: hospital departments, laboratories, radiology).
ALTER TABLE platform_role ADD COLUMN municipality_id uuid REFERENCES municipality (id);
ALTER TABLE platform_role DROP CONSTRAINT platform_role_role_check;
ALTER TABLE platform_role ADD CONSTRAINT platform_role_role_check CHECK (role IN
    ('policy_admin', 'compliance_officer', 'municipal_admin', 'directory_admin'));
ALTER TABLE platform_role ADD CONSTRAINT platform_role_municipal_admin_has_a_municipality CHECK
    ((role = 'municipal_admin') = (municipality_id IS NOT NULL));

-- A municipality merged into another stays, named, for the records made under it.
ALTER TABLE municipality ADD COLUMN merged_into_id uuid REFERENCES municipality (id),
    ADD COLUMN merged_at timestamptz,
    ADD CONSTRAINT municipality_not_merged_into_itself CHECK (merged_into_id <> id),
    ADD CONSTRAINT municipality_merged_when CHECK ((merged_into_id IS NULL) = (merged_at IS NULL));

-- A municipality merged into another gets no units any more (its rows would fall under no policy scope).
CREATE FUNCTION refuse_units_in_a_merged_municipality() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.municipality_id IS NOT NULL
       AND EXISTS (SELECT 1 FROM municipality WHERE id = NEW.municipality_id AND merged_into_id IS NOT NULL) THEN
        RAISE EXCEPTION 'the municipality has been merged into another' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER organization_in_a_standing_municipality BEFORE INSERT OR UPDATE OF municipality_id ON organization
    FOR EACH ROW EXECUTE FUNCTION refuse_units_in_a_merged_municipality();

-- Which municipality a unit belonged to, and when: an audit record names units, so this is what keeps a
-- past record with the municipality it was made under after a merger or a transfer moves the unit.
CREATE TABLE organization_municipality_period (
    organization_id uuid NOT NULL REFERENCES organization (id) ON DELETE CASCADE,
    municipality_id uuid REFERENCES municipality (id),
    valid_from timestamptz NOT NULL,
    valid_to timestamptz,
    PRIMARY KEY (organization_id, valid_from)
);
INSERT INTO organization_municipality_period SELECT id, municipality_id, '-infinity', NULL FROM organization;

CREATE FUNCTION record_organization_municipality() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.municipality_id IS NOT DISTINCT FROM OLD.municipality_id THEN
        RETURN NULL;
    END IF;
    UPDATE organization_municipality_period SET valid_to = now()
     WHERE organization_id = NEW.id AND valid_to IS NULL AND valid_from < now();
    INSERT INTO organization_municipality_period VALUES (NEW.id, NEW.municipality_id, now(), NULL)
        ON CONFLICT (organization_id, valid_from) DO UPDATE SET municipality_id = EXCLUDED.municipality_id;
    RETURN NULL;
END $$;
CREATE TRIGGER organization_municipality_period AFTER INSERT OR UPDATE OF municipality_id ON organization
    FOR EACH ROW EXECUTE FUNCTION record_organization_municipality();

-- The municipality a unit belonged to at a moment (an audit record's `recorded_at`).
CREATE FUNCTION unit_municipality_at(unit uuid, at timestamptz) RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT municipality_id FROM organization_municipality_period
     WHERE organization_id = unit AND valid_from <= at AND (valid_to IS NULL OR valid_to > at)
$$;

GRANT SELECT ON organization_municipality_period TO akson_gateway;
GRANT EXECUTE ON FUNCTION unit_municipality_at(uuid, timestamptz) TO akson_gateway;

-- The directory is written through the API (decided by policy, audited like every write).
GRANT INSERT, UPDATE ON organization, practitioner, practitioner_role TO akson_gateway;
-- A merger through the API marks the merged municipality, sets the policy scope chosen and ends the merged
-- municipality's administrators' role.
GRANT UPDATE ON municipality TO akson_gateway;
GRANT DELETE ON platform_role TO akson_gateway;
