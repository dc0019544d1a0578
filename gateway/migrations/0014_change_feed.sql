-- Apps stay in sync (issue 14): every committed write leaves a change event in the same transaction (the
-- outbox), numbered in commit order; backend apps register webhook endpoints and the gateway keeps what it
-- delivered to them.

-- The registry's apps get a version like journal resources, so an app's change event names it.
ALTER TABLE app ADD COLUMN version integer NOT NULL DEFAULT 1;
CREATE FUNCTION app_next_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END $$;
CREATE TRIGGER app_next_version BEFORE UPDATE ON app FOR EACH ROW EXECUTE FUNCTION app_next_version();

-- The outbox. A row is written by the capture triggers below, never by the gateway's role, so there is
-- no event without its write and no write without its event. `seq` is given at commit (see
-- change_event_seal): until then it is NULL and the row is visible to no one else anyway.
CREATE TABLE change_event (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    seq bigint UNIQUE,
    resource_kind text NOT NULL,
    resource_id text NOT NULL,
    patient_id uuid,
    action text NOT NULL CHECK (action IN ('created', 'updated', 'entered-in-error')),
    version integer NOT NULL,
    client_id text,
    actor text,
    committed_at timestamptz
);
CREATE INDEX change_event_unsealed_idx ON change_event (txid) WHERE seq IS NULL;
CREATE INDEX change_event_kind_idx ON change_event (resource_kind, seq);
CREATE INDEX change_event_patient_idx ON change_event (patient_id, seq) WHERE patient_id IS NOT NULL;

-- The last sequence number given. Its row lock is taken at commit and held until the commit is visible,
-- so a transaction that commits later always gets higher numbers: a reader that has seen seq n has
-- seen every event numbered below n, and `seq > cursor` never skips an event that committed late.
CREATE TABLE change_head (
    id integer PRIMARY KEY CHECK (id = 1),
    last_seq bigint NOT NULL
);
INSERT INTO change_head VALUES (1, 0);

-- One capture function for every table: TG_ARGV names the id column, the patient column ('' for none)
-- and whether the table keeps versions (its `last_change` says what an update was).
CREATE FUNCTION change_capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    id_column text := TG_ARGV[0];
    patient_column text := TG_ARGV[1];
    versioned boolean := TG_ARGV[2]::boolean;
BEGIN
    EXECUTE format(
        'INSERT INTO change_event (resource_kind, resource_id, patient_id, action, version, client_id, actor) '
        'SELECT %L, n.%I::text, %s, %s, n.version, journal_app(), journal_actor() FROM changed_rows n ORDER BY n.%I',
        TG_TABLE_NAME, id_column,
        CASE WHEN patient_column = '' THEN 'NULL::uuid' ELSE format('n.%I', patient_column) END,
        CASE WHEN TG_OP = 'INSERT' THEN '''created'''
             WHEN versioned THEN 'n.last_change'
             ELSE '''updated''' END,
        id_column);
    RETURN NULL;
END $$;

-- At commit, number this transaction's events after every event committed before it, and wake listeners.
-- Deferred constraint triggers fire once per event row: the first seals every event of the transaction and
-- notes the last id it sealed, so the others return at once.
CREATE FUNCTION change_event_seal() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    pending bigint;
    top bigint;
    last_id bigint;
BEGIN
    IF NEW.id <= coalesce(nullif(current_setting('akson.change_sealed_to', true), ''), '0')::bigint THEN
        RETURN NULL;
    END IF;
    SELECT count(*) INTO pending FROM change_event WHERE txid = pg_current_xact_id() AND seq IS NULL;
    IF pending = 0 THEN
        RETURN NULL;
    END IF;
    UPDATE change_head SET last_seq = last_seq + pending WHERE id = 1 RETURNING last_seq INTO top;
    WITH sealed AS (
        UPDATE change_event e
           SET seq = top - pending + s.n, committed_at = clock_timestamp()
          FROM (SELECT id, row_number() OVER (ORDER BY id) AS n
                  FROM change_event WHERE txid = pg_current_xact_id() AND seq IS NULL) s
         WHERE e.id = s.id
        RETURNING e.id)
    SELECT max(id) INTO last_id FROM sealed;
    PERFORM set_config('akson.change_sealed_to', last_id::text, true);
    PERFORM pg_notify('akson_changes', top::text);
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER change_event_seal AFTER INSERT ON change_event
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION change_event_seal();

DO $$
DECLARE
    t text;
    spec text[];
BEGIN
    FOREACH spec SLICE 1 IN ARRAY ARRAY[
        ARRAY['organization', 'id', '', 'true'], ARRAY['practitioner', 'id', '', 'true'],
        ARRAY['practitioner_role', 'id', '', 'true'], ARRAY['patient', 'id', 'id', 'true'],
        ARRAY['care_relation', 'id', 'patient_id', 'true'], ARRAY['encounter', 'id', 'patient_id', 'true'],
        ARRAY['observation', 'id', 'patient_id', 'true'], ARRAY['diagnostic_report', 'id', 'patient_id', 'true'],
        ARRAY['condition', 'id', 'patient_id', 'true'], ARRAY['medication_statement', 'id', 'patient_id', 'true'],
        ARRAY['allergy_intolerance', 'id', 'patient_id', 'true'], ARRAY['clinical_note', 'id', 'patient_id', 'true'],
        ARRAY['care_plan', 'id', 'patient_id', 'true'], ARRAY['appointment', 'id', 'patient_id', 'true'],
        ARRAY['restriction', 'id', 'patient_id', 'true'], ARRAY['emergency_grant', 'id', 'patient_id', 'true'],
        ARRAY['app', 'client_id', '', 'false']]
    LOOP
        t := spec[1];
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS changed_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION change_capture(%L, %L, %L)',
                       t || '_capture_insert', t, spec[2], spec[3], spec[4]);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING NEW TABLE AS changed_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION change_capture(%L, %L, %L)',
                       t || '_capture_update', t, spec[2], spec[3], spec[4]);
    END LOOP;
END $$;

-- Webhook endpoints of backend apps: where to send, which changes, and the signing secret (shown to the
-- vendor once; the previous one stays valid for a while after a rotation, and both sign meanwhile).
CREATE TABLE webhook_endpoint (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id text NOT NULL REFERENCES app (client_id),
    url text NOT NULL CHECK (length(url) BETWEEN 8 AND 2000),
    description text CHECK (length(description) <= 200),
    kinds text[] NOT NULL CHECK (cardinality(kinds) > 0),
    patient_id uuid REFERENCES patient (id),
    unit_id uuid REFERENCES organization (id),
    secret text NOT NULL,
    previous_secret text,
    previous_secret_expires_at timestamptz,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    status_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    version integer NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoint_client_idx ON webhook_endpoint (client_id, created_at DESC);
CREATE TRIGGER webhook_endpoint_next_version BEFORE UPDATE ON webhook_endpoint
    FOR EACH ROW EXECUTE FUNCTION app_next_version();
CREATE TRIGGER webhook_endpoint_capture_insert AFTER INSERT ON webhook_endpoint REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_capture('id', '', 'false');
CREATE TRIGGER webhook_endpoint_capture_update AFTER UPDATE ON webhook_endpoint REFERENCING NEW TABLE AS changed_rows
    FOR EACH STATEMENT EXECUTE FUNCTION change_capture('id', '', 'false');

-- The delivery worker's own state of an endpoint, apart from it so that the worker's bookkeeping is no
-- change of the endpoint: how far the feed was read for it, and since when its deliveries fail.
CREATE TABLE webhook_cursor (
    endpoint_id uuid PRIMARY KEY REFERENCES webhook_endpoint (id),
    position bigint NOT NULL,
    failing_since timestamptz,
    last_error text
);

-- One delivery per endpoint and change (the unique key makes fan-out idempotent), with its attempts.
CREATE TABLE webhook_delivery (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    endpoint_id uuid NOT NULL REFERENCES webhook_endpoint (id),
    seq bigint NOT NULL,
    resource_kind text NOT NULL,
    resource_id text NOT NULL,
    patient_id uuid,
    action text NOT NULL,
    version integer NOT NULL,
    committed_at timestamptz NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'withheld', 'dead')),
    status_reason text,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    first_attempt_at timestamptz,
    last_attempt_at timestamptz,
    last_status_code integer,
    last_latency_ms integer,
    delivered_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, seq)
);
CREATE INDEX webhook_delivery_due_idx ON webhook_delivery (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_delivery_endpoint_idx ON webhook_delivery (endpoint_id, created_at DESC, id);

CREATE TABLE webhook_attempt (
    delivery_id uuid NOT NULL REFERENCES webhook_delivery (id),
    attempt integer NOT NULL,
    attempted_at timestamptz NOT NULL,
    status_code integer,
    error text,
    latency_ms integer NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- The gateway reads the outbox but cannot write it; it keeps the webhook tables.
REVOKE ALL ON change_event, change_head FROM akson_gateway;
GRANT SELECT ON change_event TO akson_gateway;
GRANT SELECT ON change_head TO akson_gateway;
GRANT SELECT, INSERT, UPDATE ON webhook_endpoint, webhook_cursor, webhook_delivery, webhook_attempt TO akson_gateway;
