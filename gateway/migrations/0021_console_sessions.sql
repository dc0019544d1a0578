-- The console's sessions (issue 20): the signed-in person's access token, kept on the server and found by the
-- SHA-256 of a random HttpOnly cookie, with the CSRF token of their forms. A row lives as long as its token.
CREATE TABLE console_session (
    id_hash text PRIMARY KEY,
    access_token text NOT NULL,
    persona text NOT NULL,
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX console_session_expiry ON console_session (expires_at);
GRANT SELECT, INSERT, DELETE ON console_session TO akson_gateway;
