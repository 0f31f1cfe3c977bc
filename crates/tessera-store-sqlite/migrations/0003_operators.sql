-- Tessera schema v3: operators of the management plane and their Accounts refresh ids.
CREATE TABLE operators (
    id             TEXT PRIMARY KEY,
    username       TEXT NOT NULL,
    username_key   TEXT NOT NULL UNIQUE,
    domain         TEXT,
    kind           TEXT NOT NULL,
    role           TEXT NOT NULL,
    password_hash  TEXT,
    api_key_hash   BLOB UNIQUE,
    disabled       INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
);

-- Refresh ids are stored only as keyed hashes; reusable until expires_at (absolute).
CREATE TABLE operator_sessions (
    hash         BLOB PRIMARY KEY,
    operator_id  TEXT NOT NULL REFERENCES operators(id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX operator_sessions_operator ON operator_sessions(operator_id);
CREATE INDEX operator_sessions_expiry ON operator_sessions(expires_at);
CREATE INDEX families_project ON families(project_id);
