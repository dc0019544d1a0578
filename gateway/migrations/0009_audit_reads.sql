-- Reading the audit log through the API (patients' access log, compliance review, reports): the
-- gateway role may read audit rows (still only add, never change them).
GRANT SELECT ON audit_event TO akson_gateway;
CREATE INDEX audit_event_recorded_idx ON audit_event (recorded_at DESC, id DESC);
CREATE INDEX audit_event_client_idx ON audit_event (client_id, recorded_at DESC);
