-- A municipality's Cerbos policy scope: its local rules (policies with `scope: <name>`) apply to the
-- journal data its units own, on top of the national baseline.
ALTER TABLE municipality ADD COLUMN policy_scope text CHECK (policy_scope ~ '^[a-z][a-z0-9_]{1,40}$');
CREATE UNIQUE INDEX municipality_policy_scope_idx ON municipality (policy_scope);
