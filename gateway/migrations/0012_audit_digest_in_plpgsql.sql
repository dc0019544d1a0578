-- The chain trigger computes every row's digest. As a SQL-language function called from PL/pgSQL, the
-- digest set up a new executor for every row; the same expression in PL/pgSQL is evaluated in place, the
-- digest unchanged (`akson audit verify` recomputes it with this function too). Rows up to 8 kB, a page of
-- ids included, are stored as they are instead of being compressed first.

CREATE OR REPLACE FUNCTION audit_row_digest(prev text, a audit_event) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN encode(sha256(convert_to(concat_ws('|', prev, a.id::text,
        to_char(a.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), a.request_id::text,
        coalesce(a.trace_id, ''), a.actor_kind, a.actor_id, coalesce(a.actor_hpr_number, ''),
        array_to_string(a.actor_unit_ids, ','), a.client_id, coalesce(a.patient_id::text, ''), a.resource_kind,
        array_to_string(a.resource_ids, ','), a.action, coalesce(a.purpose_of_use, ''), a.self_attested::text,
        a.emergency::text, a.decision, coalesce(a.reason, ''), a.policy_version), 'UTF8')), 'hex');
END $$;

ALTER TABLE audit_event SET (toast_tuple_target = 8160);
