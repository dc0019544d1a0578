-- The audit log at the scale of a country: `audit_event` is partitioned by month of `recorded_at`, so old
-- months can be archived (`akson audit archive`) and dropped whole; the hash chain runs across partitions
-- in id order as before. Signed checkpoints let `akson audit verify` start from the last verified row, and
-- archives record where the chain continues.
--
-- A row's partition is chosen from `recorded_at` before row triggers run, so the chain trigger no longer
-- sets the time: the statement that inserts takes the chain lock first (`audit_chain_lock()` in its WHERE
-- clause), and `recorded_at` defaults to the clock when each row is formed, after the lock. Time order is
-- still id order, and each month holds one contiguous stretch of the chain.

ALTER TABLE audit_event RENAME TO audit_event_unpartitioned;
ALTER SEQUENCE audit_event_id_seq OWNED BY NONE;

CREATE TABLE audit_event (LIKE audit_event_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (recorded_at);
ALTER TABLE audit_event ALTER COLUMN recorded_at SET DEFAULT clock_timestamp();
ALTER TABLE audit_event ADD PRIMARY KEY (id, recorded_at);
ALTER SEQUENCE audit_event_id_seq OWNED BY audit_event.id;
CREATE TABLE audit_event_default PARTITION OF audit_event DEFAULT;
ALTER TABLE audit_event_default SET (toast_tuple_target = 8160);

-- The partition of one month (UTC), created when missing. Only migrations (every `akson serve` and
-- `akson migrate`) call it; the gateway's role cannot create tables. Rows of a month that had no partition
-- when they were written stay in the default partition, and that month gets none.
CREATE FUNCTION audit_month_partition(month date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    first date := date_trunc('month', month)::date;
    name text := format('audit_event_y%sm%s', to_char(first, 'YYYY'), to_char(first, 'MM'));
BEGIN
    IF to_regclass(name) IS NULL THEN
        IF EXISTS (SELECT 1 FROM audit_event_default
                    WHERE recorded_at >= (first::timestamp AT TIME ZONE 'UTC')
                      AND recorded_at < ((first + interval '1 month')::timestamp AT TIME ZONE 'UTC')) THEN
            RAISE WARNING 'audit rows of % are in the default partition; % is not created', first, name;
            RETURN NULL;
        END IF;
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF audit_event FOR VALUES FROM (%L) TO (%L) WITH (toast_tuple_target = 8160)',
            name, (first::timestamp AT TIME ZONE 'UTC'), ((first + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
    END IF;
    RETURN name;
END $$;

-- Every month from `since` to `ahead` months after the current one has its partition.
CREATE FUNCTION audit_ensure_partitions(since date, ahead integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    month date := date_trunc('month', since)::date;
BEGIN
    WHILE month <= (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => ahead))::date LOOP
        PERFORM audit_month_partition(month);
        month := (month + interval '1 month')::date;
    END LOOP;
END $$;

SELECT audit_ensure_partitions(
    coalesce((SELECT min(recorded_at) AT TIME ZONE 'UTC' FROM audit_event_unpartitioned), now() AT TIME ZONE 'UTC')::date,
    3
);

INSERT INTO audit_event SELECT * FROM audit_event_unpartitioned;

-- The digest takes the row type of the table: the same digest as before (0012), its fields now named by
-- one function that archives also use, so an archived row can be checked without the database.
DROP FUNCTION audit_row_digest(text, audit_event_unpartitioned);
CREATE FUNCTION audit_row_fields(a audit_event) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN ARRAY[a.id::text,
        to_char(a.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), a.request_id::text,
        coalesce(a.trace_id, ''), a.actor_kind, a.actor_id, coalesce(a.actor_hpr_number, ''),
        array_to_string(a.actor_unit_ids, ','), a.client_id, coalesce(a.patient_id::text, ''), a.resource_kind,
        array_to_string(a.resource_ids, ','), a.action, coalesce(a.purpose_of_use, ''), a.self_attested::text,
        a.emergency::text, a.decision, coalesce(a.reason, ''), a.policy_version];
END $$;
CREATE FUNCTION audit_row_digest(prev text, a audit_event) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN encode(sha256(convert_to(array_to_string(array_prepend(prev, audit_row_fields(a)), '|'), 'UTF8')), 'hex');
END $$;

DROP TABLE audit_event_unpartitioned;

-- Takes the chain lock for the rest of the transaction; an INSERT calls it before forming its rows.
CREATE FUNCTION audit_chain_lock() RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = public AS $$
    SELECT true FROM audit_chain_head WHERE id = 1 FOR UPDATE
$$;
REVOKE ALL ON FUNCTION audit_chain_lock() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_chain_lock() TO akson_gateway;

CREATE OR REPLACE FUNCTION audit_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    prev text := coalesce(current_setting('akson.audit_chain_tail', true), '');
BEGIN
    IF prev = '' THEN
        SELECT last_hash INTO prev FROM audit_chain_head WHERE id = 1 FOR UPDATE;
    END IF;
    NEW.id := nextval('audit_event_id_seq');
    NEW.prev_hash := prev;
    NEW.row_hash := audit_row_digest(prev, NEW);
    PERFORM set_config('akson.audit_chain_tail', NEW.row_hash, true);
    RETURN NEW;
END $$;

CREATE TRIGGER audit_chain BEFORE INSERT ON audit_event FOR EACH ROW EXECUTE FUNCTION audit_chain();
CREATE TRIGGER audit_chain_close AFTER INSERT ON audit_event FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_close();

CREATE INDEX audit_event_patient_idx ON audit_event (patient_id, recorded_at DESC);
CREATE INDEX audit_event_request_idx ON audit_event (request_id);
CREATE INDEX audit_event_recorded_idx ON audit_event (recorded_at DESC, id DESC);
CREATE INDEX audit_event_client_idx ON audit_event (client_id, recorded_at DESC);

REVOKE ALL ON audit_event FROM akson_gateway;
GRANT INSERT, SELECT ON audit_event TO akson_gateway;

-- `akson audit verify` records the last row it verified, signed with the audit key: the next run starts
-- there. `akson audit archive` records each month it moved to a file, signed: verification of what remains
-- starts where the archive ends. The gateway's role may read neither.
CREATE TABLE audit_checkpoint (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    last_id bigint NOT NULL,
    last_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    signature text NOT NULL
);
CREATE TABLE audit_archive (
    partition_name text PRIMARY KEY,
    first_id bigint NOT NULL,
    last_id bigint NOT NULL,
    first_prev_hash text NOT NULL,
    last_hash text NOT NULL,
    row_count bigint NOT NULL,
    file_name text NOT NULL,
    file_sha256 text NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT now(),
    signature text NOT NULL
);
REVOKE ALL ON audit_checkpoint, audit_archive FROM akson_gateway;
