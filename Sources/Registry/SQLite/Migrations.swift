/// The registry's schema, grown by named migrations that run once each, in order, each in
/// its own transaction. `schemas/registry.sql` is the schema they produce (a test keeps the
/// two in step); never edit a migration that has shipped — add the next one.
public struct Migration: Sendable {
    public let name: String
    public let sql: String
}

public enum RegistryMigrations {
    public static let all: [Migration] = [
        Migration(name: "001_repositories_revisions_variants", sql: """
            CREATE TABLE repositories (
                id          INTEGER PRIMARY KEY,
                namespace   TEXT NOT NULL,
                name        TEXT NOT NULL,
                private     INTEGER NOT NULL DEFAULT 0 CHECK (private IN (0, 1)),
                created_at  TEXT NOT NULL,
                UNIQUE (namespace, name)
            );
            CREATE TABLE blobs (
                sha256      TEXT PRIMARY KEY CHECK (length(sha256) = 64),
                size        INTEGER NOT NULL CHECK (size >= 0),
                created_at  TEXT NOT NULL
            );
            CREATE TABLE revisions (
                id              TEXT PRIMARY KEY CHECK (length(id) = 40),
                repository_id   INTEGER NOT NULL REFERENCES repositories(id),
                parent_id       TEXT REFERENCES revisions(id),
                message         TEXT NOT NULL,
                author          TEXT NOT NULL,
                created_at      TEXT NOT NULL
            );
            CREATE INDEX revisions_by_repository ON revisions(repository_id, created_at);
            CREATE TABLE revision_files (
                revision_id  TEXT NOT NULL REFERENCES revisions(id),
                path         TEXT NOT NULL,
                blob_sha256  TEXT NOT NULL REFERENCES blobs(sha256),
                PRIMARY KEY (revision_id, path)
            );
            CREATE TABLE refs (
                repository_id  INTEGER NOT NULL REFERENCES repositories(id),
                name           TEXT NOT NULL,
                kind           TEXT NOT NULL CHECK (kind IN ('branch', 'tag')),
                revision_id    TEXT NOT NULL REFERENCES revisions(id),
                PRIMARY KEY (repository_id, name)
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
            CREATE TABLE lineage_edges (
                child_revision_id   TEXT PRIMARY KEY REFERENCES variants(revision_id),
                parent_revision_id  TEXT NOT NULL REFERENCES variants(revision_id),
                recipe_json         TEXT NOT NULL,
                created_at          TEXT NOT NULL
            );
            """),
        Migration(name: "002_metrics", sql: """
            CREATE TABLE metrics (
                id            INTEGER PRIMARY KEY,
                revision_id   TEXT NOT NULL REFERENCES variants(revision_id),
                suite         TEXT NOT NULL,
                cpu_model     TEXT NOT NULL,
                blas_threads  INTEGER NOT NULL CHECK (blas_threads > 0),
                record_json   TEXT NOT NULL,
                created_at    TEXT NOT NULL
            );
            CREATE INDEX metrics_by_revision ON metrics(revision_id, suite, created_at);
            """),
        Migration(name: "003_users_tokens_uploads", sql: """
            CREATE TABLE users (
                id          INTEGER PRIMARY KEY,
                name        TEXT NOT NULL UNIQUE,
                created_at  TEXT NOT NULL
            );
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
            CREATE INDEX uploads_by_digest ON uploads(sha256);
            CREATE INDEX repositories_by_full_name ON repositories(namespace || '/' || name);
            """),
        // The build queue: one row per submitted recipe (a sweep is one row), its state, who
        // asked, what it registered, and the error text of a failure.
        Migration(name: "004_builds", sql: """
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
            CREATE INDEX builds_by_state ON builds(state, created_at);
            """),
        // Compression laws fitted on a base's family: each fit is kept whole (laws, the
        // points they were fitted on, bootstrap refits), newest last.
        Migration(name: "005_laws", sql: """
            CREATE TABLE laws (
                id                INTEGER PRIMARY KEY,
                base_revision_id  TEXT NOT NULL REFERENCES revisions(id),
                suite             TEXT NOT NULL,
                record_json       TEXT NOT NULL,
                created_at        TEXT NOT NULL
            );
            CREATE INDEX laws_by_base ON laws(base_revision_id, suite, created_at);
            """),
    ]

    /// Applies the migrations `database` has not seen; returns the names applied.
    @discardableResult
    public static func migrate(_ database: SQLiteDatabase, upTo count: Int = all.count) throws -> [String] {
        try database.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        let applied = Set(try database.query("SELECT name FROM schema_migrations").compactMap { $0.text("name") })
        let known = Set(all.map(\.name))
        if let unknown = applied.subtracting(known).sorted().first {
            throw RegistryError.newerSchema(database: database.path, migration: unknown)
        }
        var ran: [String] = []
        for migration in all.prefix(count) where !applied.contains(migration.name) {
            try database.transaction {
                try database.execute(migration.sql)
                try database.query("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                                   [.text(migration.name), .text(Timestamp.now())])
            }
            ran.append(migration.name)
        }
        return ran
    }
}

extension RegistryMigrations {
    /// The schema the migrations produce, as `CREATE` statements in a stable order; this is
    /// what `schemas/registry.sql` holds.
    public static func schemaSQL(of database: SQLiteDatabase) throws -> String {
        let rows = try database.query("""
            SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'
            ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END, name
            """)
        let header = "-- The registry's SQL schema, as produced by the migrations in Sources/Registry/SQLite/Migrations.swift.\n"
            + "-- Regenerate with: hubctl schema > schemas/registry.sql\n\n"
        return header + rows.compactMap { $0.text("sql") }.map { $0 + ";\n" }.joined(separator: "\n")
    }

    /// The schema of a fresh, fully migrated in-memory database.
    public static func currentSchemaSQL() throws -> String {
        let database = try SQLiteDatabase(path: ":memory:")
        try migrate(database)
        return try schemaSQL(of: database)
    }
}
