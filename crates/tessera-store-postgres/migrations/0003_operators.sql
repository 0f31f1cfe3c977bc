-- Tessera schema v3: operators of the management plane and their Accounts refresh ids.
CREATE TABLE operators (
    id             UUID PRIMARY KEY,
    username       TEXT NOT NULL,
    username_key   TEXT NOT NULL UNIQUE,
    domain         TEXT,
    kind           TEXT NOT NULL,
    role           TEXT NOT NULL,
    password_hash  TEXT,
    api_key_hash   BYTEA UNIQUE,
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     BIGINT NOT NULL
);

-- Refresh ids are stored only as keyed hashes; reusable until expires_at (absolute).
CREATE TABLE operator_sessions (
    hash         BYTEA PRIMARY KEY,
    operator_id  UUID NOT NULL REFERENCES operators(id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX operator_sessions_operator ON operator_sessions(operator_id);
CREATE INDEX operator_sessions_expiry ON operator_sessions(expires_at);
CREATE INDEX families_project ON families(project_id);
