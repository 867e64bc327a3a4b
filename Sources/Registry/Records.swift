import Foundation
import HubCore

public struct Repository: Sendable, Equatable, Codable {
    public let id: Int
    public let name: RepositoryName
    public let isPrivate: Bool
    public let createdAt: String
}

/// An immutable revision: a set of files, its parent, who made it and why. Its id is derived
/// from that content (40 hex digits, the length Hugging Face clients expect of a commit).
public struct Revision: Sendable, Equatable, Codable {
    public let id: String
    public let repository: RepositoryName
    public let parentID: String?
    public let message: String
    public let author: String
    public let createdAt: String

    enum CodingKeys: String, CodingKey {
        case id, repository, parentID = "parent_id", message, author, createdAt = "created_at"
    }
}

public struct RevisionFile: Sendable, Equatable, Codable {
    public let path: String
    public let sha256: SHA256Digest
    public let size: Int

    public init(path: String, sha256: SHA256Digest, size: Int) {
        self.path = path
        self.sha256 = sha256
        self.size = size
    }
}

/// What a revision holds as a model: base or compressed, its shape and size.
public struct VariantRecord: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable { case base, compressed }

    public let kind: Kind
    public let architecture: String
    public let parameters: Int
    public let embeddingParameters: Int
    /// Bytes of all the revision's files.
    public let bytes: Int
    /// The model's config.json, verbatim.
    public let configJSON: String
    /// Where a base model came from (a JSON object), if imported.
    public let sourceJSON: String?

    enum CodingKeys: String, CodingKey {
        case kind, architecture, parameters, embeddingParameters = "embedding_parameters", bytes
        case configJSON = "config_json", sourceJSON = "source_json"
    }

    public init(kind: Kind, architecture: String, parameters: Int, embeddingParameters: Int, bytes: Int,
                configJSON: String, sourceJSON: String?) {
        self.kind = kind
        self.architecture = architecture
        self.parameters = parameters
        self.embeddingParameters = embeddingParameters
        self.bytes = bytes
        self.configJSON = configJSON
        self.sourceJSON = sourceJSON
    }
}

/// A variant's edge to the variant it was made from, carrying the recipe that made it.
public struct LineageEdge: Sendable, Equatable, Codable {
    public let childRevisionID: String
    public let parentRevisionID: String
    public let recipeJSON: String
    public let createdAt: String

    enum CodingKeys: String, CodingKey {
        case childRevisionID = "child_revision_id", parentRevisionID = "parent_revision_id", recipeJSON = "recipe_json"
        case createdAt = "created_at"
    }
}

/// One evaluation of one variant, as the registry keeps it.
public struct StoredMetrics: Sendable, Equatable, Codable {
    public let revisionID: String
    public let suite: String
    public let cpuModel: String
    public let blasThreads: Int
    /// The Evaluator's metrics record, verbatim.
    public let recordJSON: String
    public let createdAt: String

    enum CodingKeys: String, CodingKey {
        case revisionID = "revision_id", suite, cpuModel = "cpu_model", blasThreads = "blas_threads", recordJSON = "record_json"
        case createdAt = "created_at"
    }

    public init(revisionID: String, suite: String, cpuModel: String, blasThreads: Int, recordJSON: String, createdAt: String) {
        self.revisionID = revisionID
        self.suite = suite
        self.cpuModel = cpuModel
        self.blasThreads = blasThreads
        self.recordJSON = recordJSON
        self.createdAt = createdAt
    }
}

public enum RepositoryVisibility: Sendable { case `public`, `private` }

/// Everything a new revision needs; the store writes all of it in one transaction.
public struct NewRevision: Sendable {
    public var repository: RepositoryName
    public var branch: String = "main"
    public var message: String
    public var author: String
    public var files: [RevisionFile]
    public var variant: VariantRecord?
    public var lineage: (parentRevisionID: String, recipeJSON: String)?
    /// When set, the commit happens only if the branch is still at this revision (optimistic
    /// concurrency: two writers cannot both build on the same head unknowingly).
    public var expectedParentID: String?
    /// Whether a missing repository is created (private or public) in the same transaction
    /// as the revision, rather than refused.
    public var createsRepository: RepositoryVisibility?

    public init(repository: RepositoryName, message: String, author: String, files: [RevisionFile],
                variant: VariantRecord? = nil, branch: String = "main") {
        self.repository = repository
        self.message = message
        self.author = author
        self.files = files
        self.variant = variant
        self.branch = branch
    }
}

enum Timestamp {
    static func now() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date())
    }
}
