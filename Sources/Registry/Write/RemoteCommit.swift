import Foundation
import HubCore

/// A commit of files already uploaded as blobs: what `POST /api/models/{repo}/commit/{branch}`
/// carries (`schemas/commit-request.schema.json`).
public struct CommitRequest: Codable, Sendable, Equatable {
    public struct File: Codable, Sendable, Equatable {
        public let path: String
        public let sha256: SHA256Digest

        public init(path: String, sha256: SHA256Digest) {
            self.path = path
            self.sha256 = sha256
        }
    }

    public struct Lineage: Codable, Sendable, Equatable {
        /// `namespace/name[@revision]` of the model the variant was made from.
        public let parent: String

        public init(parent: String) { self.parent = parent }
    }

    public var message: String?
    /// The revision the branch must still be at; nil commits on top of whatever is there.
    public var parentCommit: String?
    /// Applies when the commit creates the repository.
    public var `private`: Bool?
    public var files: [File]
    /// Present for a variant made from another: the commit must then hold the `recipe.json` or
    /// `finetune.json` that made it.
    public var lineage: Lineage?

    public init(message: String? = nil, parentCommit: String? = nil, private isPrivate: Bool? = nil, files: [File], lineage: Lineage? = nil) {
        self.message = message
        self.parentCommit = parentCommit
        self.private = isPrivate
        self.files = files
        self.lineage = lineage
    }

    enum CodingKeys: String, CodingKey {
        case message, files, lineage, `private`
        case parentCommit = "parent_commit"
    }
}

extension HubRegistry {
    /// Commits uploaded blobs as one revision, all or nothing. Files that are a model
    /// (config.json and model.safetensors) get a variant record; with `lineage` the recipe in
    /// `recipe.json` must name the parent's exact weights.
    public func commit(_ request: CommitRequest, to repository: RepositoryName, branch: String, author: String) throws -> Revision {
        var files: [RevisionFile] = []
        for file in request.files {
            try RevisionPath.validate(file.path)
            guard let size = try store.blobSize(file.sha256), blobs.contains(file.sha256) else {
                throw RegistryError.blobMissing(file.sha256)
            }
            files.append(RevisionFile(path: file.path, sha256: file.sha256, size: size))
        }
        let url: (String) throws -> URL? = { path in
            try files.first(where: { $0.path == path }).map { try self.blobs.fileURL(for: $0.sha256) }
        }
        var message = request.message ?? ""
        var lineage: (parentRevisionID: String, recipeJSON: String)?
        if let requested = request.lineage {
            let parts = requested.parent.split(separator: "@", maxSplits: 1).map(String.init)
            let parent = try RepositoryName(parts[0])
            guard let record = try LineageRecord.find(url) else {
                throw RegistryError.invalidVariant(path: "recipe.json", reason: "a commit with lineage must include the recipe.json (or finetune.json) that made it")
            }
            let parentRev = try VariantInspector.lineage(record, parent: parent, parentRevision: parts.count > 1 ? parts[1] : "main",
                                                         store: store)
            lineage = (parentRev.id, record.json)
            if message.isEmpty { message = record.message(parent: parent, parentRevision: parentRev.id) }
        }
        let variant = try VariantInspector.record(kind: lineage == nil ? .base : .compressed, files: files, sourceJSON: nil, url: url)
        if lineage != nil, variant == nil {
            throw RegistryError.invalidVariant(path: "commit", reason: "a compressed variant needs config.json and model.safetensors")
        }
        var new = NewRevision(repository: repository, message: message.isEmpty ? "Upload \(files.count) files" : message,
                              author: author, files: files, variant: variant, branch: branch)
        new.lineage = lineage
        new.expectedParentID = request.parentCommit
        new.createsRepository = request.private == true ? .private : .public
        return try store.commit(new)
    }
}
