-- Tessera schema v1 (PostgreSQL). The same tables as the SQLite schema of the same version, in
-- PostgreSQL's types: ids are UUID, times BIGINT Unix seconds, hashes and key material BYTEA.
CREATE TABLE projects (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id          UUID PRIMARY KEY,
    project_id  UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    hash        BYTEA NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX api_tokens_project ON api_tokens(project_id);

-- kid is compared and ordered bytewise (as in SQLite), whatever the database's collation.
CREATE TABLE keys (
    kid           TEXT COLLATE "C" PRIMARY KEY,
    purpose       TEXT NOT NULL,
    state         TEXT NOT NULL,
    wrapped       BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    activated_at  BIGINT,
    retired_at    BIGINT,
    sealed        BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE resources (
    id            UUID PRIMARY KEY,
    project_id    UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    data          JSON NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX resources_project ON resources(project_id, kind, id);

-- One row per subscriber resource. reference_key is the lower-cased reference the subscriber
-- was created under; email_key the lower-cased email. Both are unique within a project.
CREATE TABLE subscribers (
    id             UUID PRIMARY KEY REFERENCES resources(id) ON DELETE CASCADE,
    project_id     UUID NOT NULL,
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
    password_hash  TEXT
);
-- The store maps a violation to Conflict("email") or Conflict("reference") by these names.
-- PostgreSQL checks unique indexes in creation order, and SQLite reports the email index
-- first when a new row breaks both, so the email index is created first here too.
CREATE UNIQUE INDEX subscribers_email ON subscribers(project_id, email_key);
ALTER TABLE subscribers ADD CONSTRAINT subscribers_reference UNIQUE (project_id, reference_key);

CREATE TABLE addresses (
    id            UUID PRIMARY KEY,
    project_id    UUID NOT NULL,
    resource_id   UUID NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    locked        BOOLEAN NOT NULL DEFAULT FALSE,
    cover_url     TEXT NOT NULL DEFAULT '',
    preview_url   TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL
);
CREATE INDEX addresses_project ON addresses(project_id, id);
CREATE INDEX addresses_resource ON addresses(resource_id);

-- Families carry their project id without a foreign key: they are written on the hot path,
-- and a family of a deleted project is removed by delete_project itself.
CREATE TABLE families (
    id          UUID PRIMARY KEY,
    project_id  UUID NOT NULL,
    kind        TEXT NOT NULL,
    subject     UUID NOT NULL,
    generation  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    rotated_at  BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX families_subject ON families(project_id, subject);
CREATE INDEX families_expiry ON families(expires_at);

CREATE TABLE embeds (
    id          UUID PRIMARY KEY,
    project_id  UUID NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    token_hash  BYTEA NOT NULL UNIQUE,
    addresses   UUID[] NOT NULL,
    enabled     BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL
);
-- Not in the SQLite schema: PostgreSQL does not index a referencing column by itself, and the
-- cascade of a project delete would otherwise scan every widget.
CREATE INDEX embeds_project ON embeds(project_id);
