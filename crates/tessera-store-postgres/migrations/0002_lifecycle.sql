-- Tessera schema v2: when a family's newest token expires (for the cleanup), and audit events.
ALTER TABLE families ADD COLUMN tokens_expire_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX families_tokens_expiry ON families(tokens_expire_at);

-- seq is the insertion order, by which audit pages are read.
CREATE TABLE audit_events (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT NOT NULL,
    project_id  UUID,
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    subject     TEXT NOT NULL,
    detail      JSON NOT NULL
);
CREATE INDEX audit_events_at ON audit_events(at);
CREATE INDEX audit_events_project ON audit_events(project_id, at);
