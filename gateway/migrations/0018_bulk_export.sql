-- FHIR Bulk Data exports (issue 18): one row per kick-off, so that any process answers its status; the
-- NDJSON files are in the export folder (Settings.export_dir) until the export expires.
CREATE TABLE bulk_export (
    id uuid PRIMARY KEY,
    client_id text NOT NULL,
    requested_by text NOT NULL,
    level text NOT NULL CHECK (level IN ('system', 'patient', 'group')),
    group_id uuid,
    types text[] NOT NULL,
    since timestamptz,
    request_url text NOT NULL,
    status text NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
    resources_written bigint NOT NULL DEFAULT 0,
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    transaction_time timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    expires_at timestamptz,
    output jsonb NOT NULL DEFAULT '[]',
    error text
);
CREATE INDEX bulk_export_expiry ON bulk_export (expires_at) WHERE expires_at IS NOT NULL;
GRANT SELECT, INSERT, UPDATE, DELETE ON bulk_export TO akson_gateway;
