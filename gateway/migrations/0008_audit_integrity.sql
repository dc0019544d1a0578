-- Tamper evidence for the audit log (issue 6): every row is hash-chained to the one before it, and the
-- gateway works through a database role that may only add audit rows, never change or remove them.

CREATE TABLE audit_chain_head (
    id integer PRIMARY KEY CHECK (id = 1),
    last_id bigint NOT NULL,
    last_hash text NOT NULL
);
INSERT INTO audit_chain_head VALUES (1, 0, repeat('0', 64));

ALTER TABLE audit_event ADD COLUMN prev_hash text;
ALTER TABLE audit_event ADD COLUMN row_hash text;

-- The one definition of a row's digest, used when writing and when verifying.
CREATE FUNCTION audit_row_digest(prev text, a audit_event) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to(concat_ws('|', prev, a.id::text,
        to_char(a.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), a.request_id::text,
        coalesce(a.trace_id, ''), a.actor_kind, a.actor_id, coalesce(a.actor_hpr_number, ''),
        array_to_string(a.actor_unit_ids, ','), a.client_id, coalesce(a.patient_id::text, ''), a.resource_kind,
        array_to_string(a.resource_ids, ','), a.action, coalesce(a.purpose_of_use, ''), a.self_attested::text,
        a.emergency::text, a.decision, coalesce(a.reason, ''), a.policy_version), 'UTF8')), 'hex')
$$;

CREATE FUNCTION audit_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    prev text;
BEGIN
    SELECT last_hash INTO prev FROM audit_chain_head WHERE id = 1 FOR UPDATE;
    NEW.prev_hash := prev;
    NEW.row_hash := audit_row_digest(prev, NEW);
    UPDATE audit_chain_head SET last_id = NEW.id, last_hash = NEW.row_hash WHERE id = 1;
    RETURN NEW;
END $$;

-- Rows written before the chain existed are chained now, in id order.
DO $$
DECLARE
    r audit_event;
    prev text := repeat('0', 64);
BEGIN
    FOR r IN SELECT * FROM audit_event ORDER BY id LOOP
        UPDATE audit_event SET prev_hash = prev, row_hash = audit_row_digest(prev, r) WHERE id = r.id;
        prev := audit_row_digest(prev, r);
        UPDATE audit_chain_head SET last_id = r.id, last_hash = prev WHERE id = 1;
    END LOOP;
END $$;

CREATE TRIGGER audit_chain BEFORE INSERT ON audit_event FOR EACH ROW EXECUTE FUNCTION audit_chain();

-- The gateway's role: reads the journal, writes what the API writes, and only adds to the audit log.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'akson_gateway') THEN
        CREATE ROLE akson_gateway NOLOGIN;
    END IF;
END $$;
GRANT akson_gateway TO CURRENT_USER;
GRANT USAGE ON SCHEMA public TO akson_gateway;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO akson_gateway;
REVOKE ALL ON audit_event, audit_chain_head FROM akson_gateway;
GRANT INSERT ON audit_event TO akson_gateway;
GRANT INSERT, UPDATE ON app, emergency_grant, restriction, clinical_note TO akson_gateway;
