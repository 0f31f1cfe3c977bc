-- Tessera schema v2: when a family's newest token expires (for the cleanup), and audit events.
ALTER TABLE families ADD COLUMN tokens_expire_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX families_tokens_expiry ON families(tokens_expire_at);

CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    project_id  TEXT,
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    subject     TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events(at);
CREATE INDEX audit_events_project ON audit_events(project_id, at);
