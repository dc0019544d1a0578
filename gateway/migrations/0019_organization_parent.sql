-- The directory (issue 19): an organization unit may belong to a parent (a hospital's departments, a
-- municipality's services under its health administration).
ALTER TABLE organization
    ADD COLUMN parent_id uuid REFERENCES organization (id),
    ADD CONSTRAINT organization_not_its_own_parent CHECK (parent_id <> id);
CREATE INDEX organization_parent_idx ON organization (parent_id) WHERE parent_id IS NOT NULL;
