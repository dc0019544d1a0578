-- OpenID Connect sign-in (issue 20). The console, as a client: a sign-in under way, found by the SHA-256 of a
-- random HttpOnly cookie, keeps its state, nonce and PKCE verifier here until the issuer sends the person back
-- (ten minutes at most; used once). The demo issuer, as a provider: an authorization code, stored as its
-- SHA-256, is bound to its client, redirect URI, PKCE challenge and the person who signed in, and is redeemed
-- once within a minute.
CREATE TABLE console_sign_in (
    id_hash text PRIMARY KEY,
    state text NOT NULL,
    nonce text NOT NULL,
    code_verifier text NOT NULL,
    -- The session this browser had when it started (its cookie is SameSite=Strict, so it does not come back
    -- with the issuer's answer): it ends when the new one begins.
    replaces_session text,
    expires_at timestamptz NOT NULL
);
CREATE INDEX console_sign_in_expiry ON console_sign_in (expires_at);
GRANT SELECT, INSERT, DELETE ON console_sign_in TO akson_gateway;

-- An app's history (issue 20): its registration and every decision on it, written in the transaction that makes
-- them, with who and why. Apps registered before this migration get their registration and last decision.
CREATE TABLE app_decision (
    id bigserial PRIMARY KEY,
    client_id text NOT NULL REFERENCES app (client_id),
    action text NOT NULL CHECK (action IN ('register', 'approve', 'suspend', 'revoke')),
    reason text,
    decided_by text NOT NULL,
    decided_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX app_decision_of_app ON app_decision (client_id, decided_at, id);
INSERT INTO app_decision (client_id, action, reason, decided_by, decided_at)
SELECT client_id, 'register', NULL, registered_by, registered_at FROM app;
INSERT INTO app_decision (client_id, action, reason, decided_by, decided_at)
SELECT client_id, CASE status WHEN 'approved' THEN 'approve' WHEN 'suspended' THEN 'suspend' ELSE 'revoke' END,
       status_reason, decided_by, decided_at
FROM app WHERE status <> 'pending' AND decided_at IS NOT NULL AND decided_by IS NOT NULL;
GRANT SELECT, INSERT ON app_decision TO akson_gateway;
GRANT USAGE ON SEQUENCE app_decision_id_seq TO akson_gateway;

-- The patient whose access log a citizen's console session shows (their own, or the child they act for).
ALTER TABLE console_session ADD COLUMN patient_id uuid;

CREATE TABLE oauth_authorization_code (
    code_hash text PRIMARY KEY,
    client_id text NOT NULL REFERENCES app (client_id),
    redirect_uri text NOT NULL,
    code_challenge text NOT NULL,
    persona text NOT NULL,
    scope text NOT NULL,
    nonce text,
    expires_at timestamptz NOT NULL
);
CREATE INDEX oauth_authorization_code_expiry ON oauth_authorization_code (expires_at);
GRANT SELECT, INSERT, DELETE ON oauth_authorization_code TO akson_gateway;
