-- Roles on the platform itself (not in a care unit): policy admins manage apps and rules,
-- compliance officers review the audit log. A person holds them by national id; holding one gives
-- no access to patient data.
CREATE TABLE platform_role (
    national_id text NOT NULL CHECK (national_id ~ '^[0-9]{11}$'),
    role text NOT NULL CHECK (role IN ('policy_admin', 'compliance_officer')),
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (national_id, role)
);
