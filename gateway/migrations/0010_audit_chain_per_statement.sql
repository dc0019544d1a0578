-- The audit chain (0008) updated its head row once per inserted row. Within one INSERT of many rows every
-- update made a new version of that row for the next one to walk past, so a large INSERT cost time
-- quadratic in its rows while holding the chain lock. Now the running hash is kept in a transaction-local
-- setting while a statement inserts, and the head is written once, when the statement ends. The digest,
-- the links and `akson audit verify` are unchanged.
-- Ids and times were assigned before the chain lock was taken, so under concurrent inserts the id order
-- (which verify walks) could differ from the chain order and verify reported a break that was none. Both
-- are now assigned while the lock is held: id order is chain order. The id is no longer an identity
-- column (whose value is drawn before any trigger runs) but drawn by the chain trigger alone, so ids stay
-- without gaps.

ALTER TABLE audit_event ALTER COLUMN id DROP IDENTITY;
CREATE SEQUENCE audit_event_id_seq AS bigint OWNED BY audit_event.id;
SELECT setval('audit_event_id_seq', coalesce(max(id), 0) + 1, false) FROM audit_event;

CREATE OR REPLACE FUNCTION audit_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    prev text := coalesce(current_setting('akson.audit_chain_tail', true), '');
BEGIN
    IF prev = '' THEN
        SELECT last_hash INTO prev FROM audit_chain_head WHERE id = 1 FOR UPDATE;
    END IF;
    NEW.id := nextval('audit_event_id_seq');
    NEW.recorded_at := clock_timestamp();
    NEW.prev_hash := prev;
    NEW.row_hash := audit_row_digest(prev, NEW);
    PERFORM set_config('akson.audit_chain_tail', NEW.row_hash, true);
    RETURN NEW;
END $$;

CREATE FUNCTION audit_chain_close() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    tail text := coalesce(current_setting('akson.audit_chain_tail', true), '');
BEGIN
    IF tail <> '' THEN
        UPDATE audit_chain_head
           SET last_id = currval('audit_event_id_seq'), last_hash = tail
         WHERE id = 1;
        PERFORM set_config('akson.audit_chain_tail', '', true);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER audit_chain_close AFTER INSERT ON audit_event FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_close();
