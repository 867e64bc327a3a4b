-- The registry's SQL schema, as produced by the migrations in Sources/Registry/SQLite/Migrations.swift.
-- Regenerate with: hubctl schema > schemas/registry.sql

CREATE TABLE blobs (
    sha256      TEXT PRIMARY KEY CHECK (length(sha256) = 64),
    size        INTEGER NOT NULL CHECK (size >= 0),
    created_at  TEXT NOT NULL
);

CREATE TABLE builds (
    id                TEXT PRIMARY KEY,
    recipe_json       TEXT NOT NULL,
    author            TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    cancel_requested  INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    attempts          INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    error             TEXT,
    result_json       TEXT,
    created_at        TEXT NOT NULL,
    started_at        TEXT,
    finished_at       TEXT
);

CREATE TABLE laws (
    id                INTEGER PRIMARY KEY,
    base_revision_id  TEXT NOT NULL REFERENCES revisions(id),
    suite             TEXT NOT NULL,
    record_json       TEXT NOT NULL,
    created_at        TEXT NOT NULL
);

CREATE TABLE lineage_edges (
    child_revision_id   TEXT PRIMARY KEY REFERENCES variants(revision_id),
    parent_revision_id  TEXT NOT NULL REFERENCES variants(revision_id),
    recipe_json         TEXT NOT NULL,
    created_at          TEXT NOT NULL
);

CREATE TABLE metrics (
    id            INTEGER PRIMARY KEY,
    revision_id   TEXT NOT NULL REFERENCES variants(revision_id),
    suite         TEXT NOT NULL,
    cpu_model     TEXT NOT NULL,
    blas_threads  INTEGER NOT NULL CHECK (blas_threads > 0),
    record_json   TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

CREATE TABLE refs (
    repository_id  INTEGER NOT NULL REFERENCES repositories(id),
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('branch', 'tag')),
    revision_id    TEXT NOT NULL REFERENCES revisions(id),
    PRIMARY KEY (repository_id, name)
);

CREATE TABLE repositories (
    id          INTEGER PRIMARY KEY,
    namespace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    private     INTEGER NOT NULL DEFAULT 0 CHECK (private IN (0, 1)),
    created_at  TEXT NOT NULL,
    UNIQUE (namespace, name)
);

CREATE TABLE revision_files (
    revision_id  TEXT NOT NULL REFERENCES revisions(id),
    path         TEXT NOT NULL,
    blob_sha256  TEXT NOT NULL REFERENCES blobs(sha256),
    PRIMARY KEY (revision_id, path)
);

CREATE TABLE revisions (
    id              TEXT PRIMARY KEY CHECK (length(id) = 40),
    repository_id   INTEGER NOT NULL REFERENCES repositories(id),
    parent_id       TEXT REFERENCES revisions(id),
    message         TEXT NOT NULL,
    author          TEXT NOT NULL,
    created_at      TEXT NOT NULL
);

CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL);

CREATE TABLE tokens (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    label         TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE CHECK (length(secret_sha256) = 64),
    scope         TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    created_at    TEXT NOT NULL,
    revoked_at    TEXT
);

CREATE TABLE uploads (
    id          TEXT PRIMARY KEY CHECK (length(id) = 32),
    sha256      TEXT NOT NULL CHECK (length(sha256) = 64),
    size        INTEGER NOT NULL CHECK (size >= 0),
    user_id     INTEGER NOT NULL REFERENCES users(id),
    created_at  TEXT NOT NULL
);

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE variants (
    revision_id           TEXT PRIMARY KEY REFERENCES revisions(id),
    kind                  TEXT NOT NULL CHECK (kind IN ('base', 'compressed')),
    architecture          TEXT NOT NULL,
    parameters            INTEGER NOT NULL CHECK (parameters > 0),
    embedding_parameters  INTEGER NOT NULL CHECK (embedding_parameters >= 0),
    bytes                 INTEGER NOT NULL CHECK (bytes > 0),
    config_json           TEXT NOT NULL,
    source_json           TEXT
);

CREATE INDEX builds_by_state ON builds(state, created_at);

CREATE INDEX laws_by_base ON laws(base_revision_id, suite, created_at);

CREATE INDEX metrics_by_revision ON metrics(revision_id, suite, created_at);

CREATE INDEX repositories_by_full_name ON repositories(namespace || '/' || name);

CREATE INDEX revisions_by_repository ON revisions(repository_id, created_at);

CREATE INDEX uploads_by_digest ON uploads(sha256);
