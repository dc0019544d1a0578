-- One request, one round trip (issue 17): the gateway keeps each caller's principal (units, roles, platform
-- roles, emergency grants, policy scopes, guardianships) between requests, and every statement that answers
-- from it proves it is still current by reading this epoch. Any change to the data a principal is made of
-- moves the epoch, so a removed role or a new emergency grant is seen by the very next request, on any
-- gateway process.
CREATE TABLE principal_epoch (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    epoch bigint NOT NULL
);
INSERT INTO principal_epoch VALUES (true, 1);

-- SECURITY DEFINER: whoever changes the directory moves the epoch, without a grant to write it themselves.
CREATE FUNCTION bump_principal_epoch() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    UPDATE principal_epoch SET epoch = epoch + 1;
    RETURN NULL;
END $$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['practitioner', 'practitioner_role', 'platform_role', 'emergency_grant', 'organization',
                             'municipality', 'guardianship'] LOOP
        EXECUTE format('CREATE TRIGGER principal_epoch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION bump_principal_epoch()', t);
    END LOOP;
END $$;
-- A citizen's principal is their patient row's id; a service's, its app's acting unit.
CREATE TRIGGER principal_epoch AFTER INSERT OR DELETE OR TRUNCATE ON patient
    FOR EACH STATEMENT EXECUTE FUNCTION bump_principal_epoch();
CREATE TRIGGER principal_epoch_national_id AFTER UPDATE OF national_id ON patient
    FOR EACH STATEMENT EXECUTE FUNCTION bump_principal_epoch();
CREATE TRIGGER principal_epoch AFTER INSERT OR DELETE OR TRUNCATE ON app
    FOR EACH STATEMENT EXECUTE FUNCTION bump_principal_epoch();
CREATE TRIGGER principal_epoch_acting_unit AFTER UPDATE OF acting_unit_id ON app
    FOR EACH STATEMENT EXECUTE FUNCTION bump_principal_epoch();

GRANT SELECT ON principal_epoch TO akson_gateway;
