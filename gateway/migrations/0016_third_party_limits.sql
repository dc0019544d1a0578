-- Open to third parties, safe to expose (issue 16): the operations an app has registered (trusted
-- documents), its budgets set at approval, and the counters of the rate limits.

-- An app's trusted documents: the operations it will send, by the SHA-256 of their text (hex).
CREATE TABLE trusted_document (
    client_id text NOT NULL REFERENCES app (client_id),
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    document text NOT NULL,
    operation_names text[] NOT NULL DEFAULT '{}',
    registered_by text NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, sha256)
);

-- Budgets a policy admin sets when approving an app; NULL means the gateway's defaults (Settings).
ALTER TABLE app
    ADD COLUMN requests_per_minute integer CHECK (requests_per_minute > 0),
    ADD COLUMN max_cost_per_request integer CHECK (max_cost_per_request > 0),
    ADD COLUMN cost_per_minute integer CHECK (cost_per_minute > 0);

-- Rate-limit counters shared by every worker and process: a sliding window per key, kept as the count of
-- the current window and of the one before. Unlogged: counters are worth no WAL, and after a crash they
-- start again at zero.
CREATE UNLOGGED TABLE rate_counter (
    key text PRIMARY KEY,
    window_start bigint NOT NULL,
    current bigint NOT NULL,
    previous bigint NOT NULL
);

-- Take `amounts` from the keys' budgets `limits` (per window of `window_seconds`) if every key has room,
-- else take nothing. Returns, per key, the counts it saw (after taking, when taken), the fraction of the
-- window gone, and whether all was taken. Keys are locked in sorted order, so concurrent callers never
-- deadlock.
CREATE FUNCTION rate_take(keys text[], amounts bigint[], limits bigint[], window_seconds integer)
RETURNS TABLE (key text, current bigint, previous bigint, elapsed double precision, taken boolean)
LANGUAGE plpgsql AS $$
DECLARE
    now_s double precision := extract(epoch FROM clock_timestamp());
    this_window bigint := floor(now_s / window_seconds)::bigint * window_seconds;
    frac double precision := (now_s - this_window) / window_seconds;
    fits boolean := true;
    i integer;
    r record;
BEGIN
    INSERT INTO rate_counter AS c (key, window_start, current, previous)
    SELECT k, this_window, 0, 0 FROM unnest(keys) AS k ORDER BY k
    ON CONFLICT ON CONSTRAINT rate_counter_pkey DO UPDATE SET
        previous = CASE
            WHEN c.window_start = this_window THEN c.previous
            WHEN c.window_start = this_window - window_seconds THEN c.current
            ELSE 0 END,
        current = CASE WHEN c.window_start = this_window THEN c.current ELSE 0 END,
        window_start = this_window;
    FOR i IN 1 .. cardinality(keys) LOOP
        SELECT c.current, c.previous INTO r FROM rate_counter c WHERE c.key = keys[i];
        IF r.previous * (1 - frac) + r.current + amounts[i] > limits[i] THEN
            fits := false;
        END IF;
    END LOOP;
    IF fits THEN
        UPDATE rate_counter c SET current = c.current + t.amount
        FROM unnest(keys, amounts) AS t(k, amount) WHERE c.key = t.k;
    END IF;
    RETURN QUERY SELECT c.key, c.current, c.previous, frac, fits
        FROM unnest(keys) WITH ORDINALITY AS t(k, n) JOIN rate_counter c ON c.key = t.k ORDER BY t.n;
END $$;

GRANT SELECT, INSERT ON trusted_document TO akson_gateway;
GRANT SELECT, INSERT, UPDATE ON rate_counter TO akson_gateway;
