-- Tessera schema v1 (SQLite). Ids are canonical hyphenated UUID text; times are Unix seconds.
CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    hash        BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX api_tokens_project ON api_tokens(project_id);

CREATE TABLE keys (
    kid           TEXT PRIMARY KEY,
    purpose       TEXT NOT NULL,
    state         TEXT NOT NULL,
    wrapped       BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    activated_at  INTEGER,
    retired_at    INTEGER,
    sealed        INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE resources (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    data          TEXT NOT NULL DEFAULT '{}',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX resources_project ON resources(project_id, kind, id);

-- One row per subscriber resource. reference_key is the lower-cased reference the subscriber
-- was created under; email_key the lower-cased email. Both are unique within a project.
CREATE TABLE subscribers (
    id             TEXT PRIMARY KEY REFERENCES resources(id) ON DELETE CASCADE,
    project_id     TEXT NOT NULL,
    reference_key  TEXT NOT NULL,
    email          TEXT NOT NULL,
    email_key      TEXT NOT NULL,
    first_name     TEXT NOT NULL DEFAULT '',
    last_name      TEXT NOT NULL DEFAULT '',
    display_name   TEXT NOT NULL DEFAULT '',
    job_title      TEXT NOT NULL DEFAULT '',
    timezone       TEXT NOT NULL DEFAULT '',
    country        TEXT NOT NULL DEFAULT '',
    region         TEXT NOT NULL DEFAULT '',
    company_name   TEXT NOT NULL DEFAULT '',
    password_hash  TEXT,
    UNIQUE (project_id, reference_key)
);
CREATE UNIQUE INDEX subscribers_email ON subscribers(project_id, email_key);

CREATE TABLE addresses (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL,
    resource_id   TEXT NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    locked        INTEGER NOT NULL DEFAULT 0,
    cover_url     TEXT NOT NULL DEFAULT '',
    preview_url   TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL
);
CREATE INDEX addresses_project ON addresses(project_id, id);
CREATE INDEX addresses_resource ON addresses(resource_id);

CREATE TABLE families (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    rotated_at  INTEGER,
    revoked_at  INTEGER
);
CREATE INDEX families_subject ON families(project_id, subject);
CREATE INDEX families_expiry ON families(expires_at);

CREATE TABLE embeds (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    token_hash  BLOB NOT NULL UNIQUE,
    addresses   TEXT NOT NULL,
    enabled     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
