-- Who may act for a child: parents (and holders of a power of attorney) by national id. A guardian
-- need not be a patient of the municipality, so the link is to the guardian's national id.
CREATE TABLE guardianship (
    id uuid PRIMARY KEY,
    guardian_national_id text NOT NULL CHECK (guardian_national_id ~ '^[0-9]{11}$'),
    child_patient_id uuid NOT NULL REFERENCES patient (id),
    basis text NOT NULL CHECK (basis IN ('parent', 'power-of-attorney')),
    period_start date NOT NULL,
    period_end date,
    UNIQUE (guardian_national_id, child_patient_id)
);
CREATE INDEX guardianship_guardian_idx ON guardianship (guardian_national_id);
CREATE INDEX guardianship_child_idx ON guardianship (child_patient_id);

-- Registered apps (client ids): their vendor, keys or redirect URIs, the scopes they were granted, and
-- where they stand (pending, approved, suspended, revoked).
CREATE TABLE app (
    client_id text PRIMARY KEY CHECK (client_id ~ '^[a-z0-9][a-z0-9-]{2,62}$'),
    name text NOT NULL,
    vendor_org_number text NOT NULL CHECK (vendor_org_number ~ '^[0-9]{9}$'),
    kind text NOT NULL CHECK (kind IN ('user-facing', 'backend-service')),
    redirect_uris text[] NOT NULL DEFAULT '{}',
    jwks jsonb,
    jwks_uri text,
    requested_scopes text[] NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'approved', 'suspended', 'revoked')),
    status_reason text,
    registered_by text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    decided_by text,
    decided_at timestamptz,
    CONSTRAINT app_backend_keys CHECK (kind <> 'backend-service' OR jwks IS NOT NULL OR jwks_uri IS NOT NULL),
    CONSTRAINT app_user_facing_redirects CHECK (kind <> 'user-facing' OR cardinality(redirect_uris) > 0)
);
