import Foundation
import HubCore

/// The embedded metadata store: one SQLite file in WAL mode.
public final class SQLiteMetadataStore: MetadataStore, @unchecked Sendable {
    public let database: SQLiteDatabase

    public init(path: String) throws {
        database = try SQLiteDatabase(path: path)
        try RegistryMigrations.migrate(database)
    }

    public func createRepository(_ name: RepositoryName, isPrivate: Bool) throws -> Repository {
        try database.transaction { try findOrInsertRepository(name, isPrivate: isPrivate) }
    }

    private func findOrInsertRepository(_ name: RepositoryName, isPrivate: Bool) throws -> Repository {
        if let existing = try repository(name) { return existing }
        let now = Timestamp.now()
        try database.query("INSERT INTO repositories (namespace, name, private, created_at) VALUES (?, ?, ?, ?)",
                           [.text(name.namespace), .text(name.name), .int(isPrivate ? 1 : 0), .text(now)])
        return Repository(id: Int(database.lastInsertRowID), name: name, isPrivate: isPrivate, createdAt: now)
    }

    public func repository(_ name: RepositoryName) throws -> Repository? {
        try database.query("SELECT * FROM repositories WHERE namespace = ? AND name = ?", [.text(name.namespace), .text(name.name)])
            .first.map(Self.repository(from:))
    }

    public func repositories() throws -> [Repository] {
        try database.query("SELECT * FROM repositories ORDER BY namespace || '/' || name").map(Self.repository(from:))
    }

    public func repositories(search: String?, after cursor: String?, limit: Int, includePrivate: Bool) throws -> [Repository] {
        var clauses: [String] = [], values: [SQLiteValue] = []
        if let search, !search.isEmpty {
            clauses.append("instr(lower(namespace || '/' || name), lower(?)) > 0")
            values.append(.text(search))
        }
        if let cursor {
            clauses.append("(namespace || '/' || name) > ?")
            values.append(.text(cursor))
        }
        if !includePrivate { clauses.append("private = 0") }
        let filter = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        return try database.query("SELECT * FROM repositories \(filter) ORDER BY namespace || '/' || name LIMIT ?", values + [.int(limit)])
            .map(Self.repository(from:))
    }

    public func registerBlob(_ digest: SHA256Digest, size: Int) throws {
        try database.query("INSERT OR IGNORE INTO blobs (sha256, size, created_at) VALUES (?, ?, ?)",
                           [.text(digest.hex), .int(size), .text(Timestamp.now())])
    }

    public func commit(_ new: NewRevision) throws -> Revision {
        guard !new.files.isEmpty else { throw RegistryError.emptyRevision(new.repository) }
        for file in new.files { try RevisionPath.validate(file.path) }
        try RefName.validate(new.branch)
        var seen = Set<String>()
        for file in new.files where !seen.insert(file.path).inserted {
            throw RegistryError.invalidPath(file.path, reason: "appears twice in the revision")
        }
        return try database.transaction {
            let existing = try repository(new.repository)
            guard let repository = try existing ?? new.createsRepository.map({ try findOrInsertRepository(new.repository, isPrivate: $0 == .private) })
            else { throw RegistryError.repositoryNotFound(new.repository) }
            for file in new.files {
                guard try database.query("SELECT 1 FROM blobs WHERE sha256 = ?", [.text(file.sha256.hex)]).first != nil else {
                    throw RegistryError.blobMissing(file.sha256)
                }
            }
            let head = try database.query("SELECT kind, revision_id FROM refs WHERE repository_id = ? AND name = ?",
                                          [.int(repository.id), .text(new.branch)]).first
            if let head, head.text("kind") != "branch" {
                throw RegistryError.refExists(repository: new.repository, ref: new.branch, kind: head.text("kind") ?? "ref",
                                              revision: head.text("revision_id") ?? "?")
            }
            let parent = head?.text("revision_id")
            // A commit that would change nothing (same files, same lineage) is the head itself:
            // no empty revision, and a client retrying a commit that did land gets that commit.
            if let parent, let existing = try unchanged(parent, by: new) { return existing }
            if let expected = new.expectedParentID, expected != parent {
                throw RegistryError.staleParent(repository: new.repository, branch: new.branch, expected: expected, found: parent)
            }
            if let lineage = new.lineage,
               try database.query("SELECT 1 FROM variants WHERE revision_id = ?", [.text(lineage.parentRevisionID)]).first == nil {
                throw RegistryError.variantNotFound(revision: lineage.parentRevisionID)
            }
            let now = Timestamp.now()
            let id = Self.revisionID(repository: new.repository, parent: parent, author: new.author, message: new.message,
                                     createdAt: now, files: new.files)
            try database.query("INSERT INTO revisions (id, repository_id, parent_id, message, author, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                               [.text(id), .int(repository.id), .optionalText(parent), .text(new.message), .text(new.author), .text(now)])
            for file in new.files {
                try database.query("INSERT INTO revision_files (revision_id, path, blob_sha256) VALUES (?, ?, ?)",
                                   [.text(id), .text(file.path), .text(file.sha256.hex)])
            }
            try database.query("""
                INSERT INTO refs (repository_id, name, kind, revision_id) VALUES (?, ?, 'branch', ?)
                ON CONFLICT (repository_id, name) DO UPDATE SET revision_id = excluded.revision_id
                """, [.int(repository.id), .text(new.branch), .text(id)])
            if let variant = new.variant {
                try database.query("""
                    INSERT INTO variants (revision_id, kind, architecture, parameters, embedding_parameters, bytes, config_json, source_json)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """, [.text(id), .text(variant.kind.rawValue), .text(variant.architecture), .int(variant.parameters),
                          .int(variant.embeddingParameters), .int(variant.bytes), .text(variant.configJSON), .optionalText(variant.sourceJSON)])
            }
            if let lineage = new.lineage {
                try database.query("INSERT INTO lineage_edges (child_revision_id, parent_revision_id, recipe_json, created_at) VALUES (?, ?, ?, ?)",
                                   [.text(id), .text(lineage.parentRevisionID), .text(lineage.recipeJSON), .text(now)])
            }
            return Revision(id: id, repository: new.repository, parentID: parent, message: new.message, author: new.author, createdAt: now)
        }
    }

    private func unchanged(_ headID: String, by new: NewRevision) throws -> Revision? {
        let headFiles = try database.query("SELECT path, blob_sha256 FROM revision_files WHERE revision_id = ?", [.text(headID)])
            .map { "\($0.text("blob_sha256")!) \($0.text("path")!)" }
        guard Set(headFiles) == Set(new.files.map { "\($0.sha256.hex) \($0.path)" }) else { return nil }
        let headLineage = try database.query("SELECT parent_revision_id FROM lineage_edges WHERE child_revision_id = ?", [.text(headID)])
            .first?.text("parent_revision_id")
        let headIsVariant = try database.query("SELECT 1 FROM variants WHERE revision_id = ?", [.text(headID)]).first != nil
        guard headLineage == new.lineage?.parentRevisionID, headIsVariant == (new.variant != nil) else { return nil }
        return try resolve(new.repository, revision: headID)
    }

    public func resolve(_ name: RepositoryName, revision: String) throws -> Revision? {
        guard let repository = try repository(name) else { throw RegistryError.repositoryNotFound(name) }
        let byRef = try database.query("SELECT revision_id FROM refs WHERE repository_id = ? AND name = ?",
                                       [.int(repository.id), .text(revision)]).first?.text("revision_id")
        let id = byRef ?? revision
        if let found = try database.query("SELECT * FROM revisions WHERE id = ? AND repository_id = ?", [.text(id), .int(repository.id)])
            .first.map({ row in
                Revision(id: row.text("id")!, repository: name, parentID: row.text("parent_id"), message: row.text("message")!,
                         author: row.text("author")!, createdAt: row.text("created_at")!)
            }) {
            return found
        }
        // Not a ref or one of ours: perhaps the upstream id of a revision mirrored here.
        guard byRef == nil, revision.count == 40, revision.allSatisfy(\.isHexDigit) else { return nil }
        return try variants(withSource: ["format": "mirror", "revision": revision.lowercased()], in: name).last
    }

    public func revision(id: String) throws -> Revision? {
        try database.query("""
            SELECT r.*, p.namespace, p.name FROM revisions r JOIN repositories p ON p.id = r.repository_id WHERE r.id = ?
            """, [.text(id)]).first.map(Self.revision(from:))
    }

    public func files(of revisionID: String) throws -> [RevisionFile] {
        try database.query("""
            SELECT f.path, f.blob_sha256, b.size FROM revision_files f JOIN blobs b ON b.sha256 = f.blob_sha256
            WHERE f.revision_id = ? ORDER BY f.path
            """, [.text(revisionID)]).map { row in
            RevisionFile(path: row.text("path")!, sha256: try SHA256Digest(hex: row.text("blob_sha256")!), size: row.int("size")!)
        }
    }

    public func variant(of revisionID: String) throws -> VariantRecord? {
        try database.query("SELECT * FROM variants WHERE revision_id = ?", [.text(revisionID)]).first.map { row in
            VariantRecord(kind: VariantRecord.Kind(rawValue: row.text("kind")!) ?? .base, architecture: row.text("architecture")!,
                          parameters: row.int("parameters")!, embeddingParameters: row.int("embedding_parameters")!,
                          bytes: row.int("bytes")!, configJSON: row.text("config_json")!, sourceJSON: row.text("source_json"))
        }
    }

    public func lineage(of revisionID: String) throws -> LineageEdge? {
        try database.query("SELECT * FROM lineage_edges WHERE child_revision_id = ?", [.text(revisionID)]).first.map { row in
            LineageEdge(childRevisionID: row.text("child_revision_id")!, parentRevisionID: row.text("parent_revision_id")!,
                        recipeJSON: row.text("recipe_json")!, createdAt: row.text("created_at")!)
        }
    }

    public func children(of revisionID: String) throws -> [LineageEdge] {
        try database.query("SELECT * FROM lineage_edges WHERE parent_revision_id = ? ORDER BY created_at, child_revision_id",
                           [.text(revisionID)]).map { row in
            LineageEdge(childRevisionID: row.text("child_revision_id")!, parentRevisionID: row.text("parent_revision_id")!,
                        recipeJSON: row.text("recipe_json")!, createdAt: row.text("created_at")!)
        }
    }

    public func recordMetrics(_ m: StoredMetrics) throws {
        try database.transaction {
            guard try database.query("SELECT 1 FROM variants WHERE revision_id = ?", [.text(m.revisionID)]).first != nil else {
                throw RegistryError.variantNotFound(revision: m.revisionID)
            }
            try database.query("""
                INSERT INTO metrics (revision_id, suite, cpu_model, blas_threads, record_json, created_at) VALUES (?, ?, ?, ?, ?, ?)
                """, [.text(m.revisionID), .text(m.suite), .text(m.cpuModel), .int(m.blasThreads), .text(m.recordJSON), .text(m.createdAt)])
        }
    }

    public func metrics(of revisionID: String) throws -> [StoredMetrics] {
        try database.query("SELECT * FROM metrics WHERE revision_id = ? ORDER BY created_at, id", [.text(revisionID)]).map { row in
            StoredMetrics(revisionID: row.text("revision_id")!, suite: row.text("suite")!, cpuModel: row.text("cpu_model")!,
                          blasThreads: row.int("blas_threads")!, recordJSON: row.text("record_json")!, createdAt: row.text("created_at")!)
        }
    }

    public func variants(withSourceSHA256 digest: SHA256Digest, in name: RepositoryName) throws -> [Revision] {
        try variants(withSource: ["sha256": digest.hex], in: name)
    }

    public func variants(withSource fields: [String: String], in name: RepositoryName?) throws -> [Revision] {
        var clauses = ["1"], values: [SQLiteValue] = []
        if let name {
            guard let repository = try repository(name) else { return [] }
            clauses.append("r.repository_id = ?")
            values.append(.int(repository.id))
        }
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            clauses.append("json_extract(v.source_json, ?) = ?")
            values += [.text("$.\"\(key)\""), .text(value)]
        }
        return try database.query("""
            SELECT r.*, p.namespace, p.name FROM revisions r JOIN variants v ON v.revision_id = r.id
            JOIN repositories p ON p.id = r.repository_id
            WHERE \(clauses.joined(separator: " AND ")) ORDER BY r.created_at
            """, values).map(Self.revision(from:))
    }

    /// A revision from a row that also holds its repository's namespace and name.
    private static func revision(from row: SQLiteRow) throws -> Revision {
        Revision(id: row.text("id")!, repository: try RepositoryName(namespace: row.text("namespace")!, name: row.text("name")!),
                 parentID: row.text("parent_id"), message: row.text("message")!,
                 author: row.text("author")!, createdAt: row.text("created_at")!)
    }

    /// Content-derived revision id: the first 40 hex digits of the sha256 of a canonical text
    /// of everything that makes the revision what it is.
    static func revisionID(repository: RepositoryName, parent: String?, author: String, message: String,
                           createdAt: String, files: [RevisionFile]) -> String {
        var canonical = "repository \(repository)\nparent \(parent ?? "none")\nauthor \(author)\ntime \(createdAt)\n"
        canonical += "message \(message.utf8.count)\n\(message)\n"
        for file in files.sorted(by: { $0.path < $1.path }) {
            canonical += "file \(file.sha256.hex) \(file.size) \(file.path)\n"
        }
        return String(SHA256Digest.of(Data(canonical.utf8)).hex.prefix(40))
    }

    private static func repository(from row: SQLiteRow) throws -> Repository {
        Repository(id: row.int("id")!, name: try RepositoryName(namespace: row.text("namespace")!, name: row.text("name")!),
                   isPrivate: row.int("private") == 1, createdAt: row.text("created_at")!)
    }
}
