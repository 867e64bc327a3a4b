import HubCore

extension SQLiteMetadataStore {
    public func tokenCount() throws -> Int {
        try database.query("SELECT count(*) AS n FROM tokens WHERE revoked_at IS NULL").first?.int("n") ?? 0
    }

    public func createToken(secretDigest: SHA256Digest, user: String, label: String, scope: TokenScope) throws -> AccessToken {
        try database.transaction {
            let now = Timestamp.now()
            try database.query("INSERT OR IGNORE INTO users (name, created_at) VALUES (?, ?)", [.text(user), .text(now)])
            let userID = try database.query("SELECT id FROM users WHERE name = ?", [.text(user)]).first!.int("id")!
            try database.query("INSERT INTO tokens (user_id, label, secret_sha256, scope, created_at) VALUES (?, ?, ?, ?, ?)",
                               [.int(userID), .text(label), .text(secretDigest.hex), .text(scope.rawValue), .text(now)])
            return AccessToken(id: Int(database.lastInsertRowID), user: user, label: label, scope: scope)
        }
    }

    public func token(secretDigest: SHA256Digest) throws -> AccessToken? {
        try database.query("""
            SELECT t.id, t.label, t.scope, u.name FROM tokens t JOIN users u ON u.id = t.user_id
            WHERE t.secret_sha256 = ? AND t.revoked_at IS NULL
            """, [.text(secretDigest.hex)]).first.flatMap { row in
            TokenScope(rawValue: row.text("scope")!).map {
                AccessToken(id: row.int("id")!, user: row.text("name")!, label: row.text("label")!, scope: $0)
            }
        }
    }

    public func tokens() throws -> [TokenListing] {
        try database.query("SELECT t.*, u.name AS user FROM tokens t JOIN users u ON u.id = t.user_id ORDER BY t.id").compactMap { row in
            TokenScope(rawValue: row.text("scope")!).map {
                TokenListing(id: row.int("id")!, user: row.text("user")!, label: row.text("label")!, scope: $0,
                             createdAt: row.text("created_at")!, revokedAt: row.text("revoked_at"))
            }
        }
    }

    public func revokeToken(id: Int) throws -> Bool {
        try database.transaction {
            try database.query("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", [.text(Timestamp.now()), .int(id)])
            return try database.query("SELECT changes() AS n").first?.int("n") == 1
        }
    }

    public func createUpload(id: String, sha256: SHA256Digest, size: Int, user: String) throws -> UploadRecord {
        try database.transaction {
            let now = Timestamp.now()
            try database.query("INSERT OR IGNORE INTO users (name, created_at) VALUES (?, ?)", [.text(user), .text(now)])
            try database.query("""
                INSERT INTO uploads (id, sha256, size, user_id, created_at)
                VALUES (?, ?, ?, (SELECT id FROM users WHERE name = ?), ?)
                """, [.text(id), .text(sha256.hex), .int(size), .text(user), .text(now)])
            return UploadRecord(id: id, sha256: sha256, size: size, user: user, createdAt: now)
        }
    }

    public func upload(id: String) throws -> UploadRecord? {
        try uploadRows("WHERE p.id = ?", [.text(id)]).first
    }

    public func uploads(of digest: SHA256Digest) throws -> [UploadRecord] {
        try uploadRows("WHERE p.sha256 = ? ORDER BY p.created_at", [.text(digest.hex)])
    }

    public func allUploads() throws -> [UploadRecord] {
        try uploadRows("ORDER BY p.created_at", [])
    }

    public func deleteUpload(id: String) throws {
        try database.query("DELETE FROM uploads WHERE id = ?", [.text(id)])
    }

    public func blobSize(_ digest: SHA256Digest) throws -> Int? {
        try database.query("SELECT size FROM blobs WHERE sha256 = ?", [.text(digest.hex)]).first?.int("size")
    }

    public func createTag(_ name: String, in repositoryName: RepositoryName, revisionID: String) throws {
        try RefName.validate(name)
        try database.transaction {
            guard let repository = try repository(repositoryName) else { throw RegistryError.repositoryNotFound(repositoryName) }
            guard try database.query("SELECT 1 FROM revisions WHERE id = ? AND repository_id = ?",
                                     [.text(revisionID), .int(repository.id)]).first != nil else {
                throw RegistryError.revisionNotFound(repository: repositoryName, revision: revisionID)
            }
            if let existing = try database.query("SELECT kind, revision_id FROM refs WHERE repository_id = ? AND name = ?",
                                                 [.int(repository.id), .text(name)]).first {
                if existing.text("kind") == "tag", existing.text("revision_id") == revisionID { return }
                throw RegistryError.refExists(repository: repositoryName, ref: name, kind: existing.text("kind") ?? "ref",
                                              revision: existing.text("revision_id") ?? "?")
            }
            try database.query("INSERT INTO refs (repository_id, name, kind, revision_id) VALUES (?, ?, 'tag', ?)",
                               [.int(repository.id), .text(name), .text(revisionID)])
        }
    }

    public func tags(of repositoryName: RepositoryName) throws -> [(name: String, revisionID: String)] {
        guard let repository = try repository(repositoryName) else { throw RegistryError.repositoryNotFound(repositoryName) }
        return try database.query("SELECT name, revision_id FROM refs WHERE repository_id = ? AND kind = 'tag' ORDER BY name",
                                  [.int(repository.id)]).map { ($0.text("name")!, $0.text("revision_id")!) }
    }

    private func uploadRows(_ clause: String, _ values: [SQLiteValue]) throws -> [UploadRecord] {
        try database.query("SELECT p.*, u.name AS user FROM uploads p JOIN users u ON u.id = p.user_id \(clause)", values).map { row in
            UploadRecord(id: row.text("id")!, sha256: try SHA256Digest(hex: row.text("sha256")!), size: row.int("size")!,
                         user: row.text("user")!, createdAt: row.text("created_at")!)
        }
    }
}

/// Branch and tag names: what a URL path segment and a revision argument can carry unambiguously.
public enum RefName {
    public static func validate(_ name: String) throws(RegistryError) {
        guard !name.isEmpty, name.utf8.count <= 128 else { throw .invalidRef(name, reason: "must be 1 to 128 characters") }
        guard name.utf8.allSatisfy({ b in
            (0x30 ... 0x39).contains(b) || (0x41 ... 0x5A).contains(b) || (0x61 ... 0x7A).contains(b) || b == 0x5F || b == 0x2E || b == 0x2D
        }) else { throw .invalidRef(name, reason: "only letters, digits, '_', '.' and '-' are allowed") }
        guard !name.hasPrefix("."), !name.hasPrefix("-"), !name.contains("..") else {
            throw .invalidRef(name, reason: "must not start with '.' or '-' or contain '..'")
        }
        if name.utf8.count == 40, name.utf8.allSatisfy({ (0x30 ... 0x39).contains($0) || (0x61 ... 0x66).contains($0) }) {
            throw .invalidRef(name, reason: "40 hex digits would read as a revision id")
        }
    }
}
