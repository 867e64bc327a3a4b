import Checkpoint
import Foundation
import HubCore

/// A registry over a data directory: `registry.sqlite` (metadata), `blobs/` (file bytes) and
/// `tmp/` (work in progress, on the same file system so that moves into place are atomic).
public final class HubRegistry: @unchecked Sendable {
    public let dataDirectory: URL
    public let store: any MetadataStore
    public let blobs: any BlobStore

    /// `$HUB_HOME`, or `~/.compression-hub`.
    public static var defaultDataDirectory: URL {
        if let home = ProcessInfo.processInfo.environment["HUB_HOME"], !home.isEmpty { return URL(fileURLWithPath: home) }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".compression-hub")
    }

    /// Opens (creating and migrating if needed) the registry in `dataDirectory`.
    public init(dataDirectory: URL) throws {
        self.dataDirectory = dataDirectory
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: dataDirectory.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw RegistryError.dataDirectory(path: dataDirectory.path, reason: "exists and is not a directory")
        }
        try FileManager.default.createDirectory(at: dataDirectory.appendingPathComponent("tmp"), withIntermediateDirectories: true)
        store = try SQLiteMetadataStore(path: dataDirectory.appendingPathComponent("registry.sqlite").path)
        blobs = try DirectoryBlobStore(root: dataDirectory.appendingPathComponent("blobs"))
    }

    /// A fresh scratch directory inside the data directory.
    public func scratchDirectory() -> URL {
        dataDirectory.appendingPathComponent("tmp").appendingPathComponent("work-\(UUID().uuidString)")
    }

    /// Stores every regular file under `directory` (subdirectories included, hidden files
    /// not) as blobs and commits them as one revision.
    public func commitDirectory(_ directory: URL, to repository: RepositoryName, message: String, author: String,
                                lineage: (parentRevisionID: String, recipeJSON: String)? = nil,
                                variant: (([RevisionFile]) throws -> VariantRecord)? = nil) throws -> Revision {
        var files: [RevisionFile] = []
        for (path, url) in try DirectoryListing.regularFiles(under: directory) {
            let (digest, size) = try blobs.ingest(fileAt: url, expected: nil)
            try store.registerBlob(digest, size: size)
            files.append(RevisionFile(path: path, sha256: digest, size: size))
        }
        var new = NewRevision(repository: repository, message: message, author: author, files: files)
        new.variant = try variant?(files)
        new.lineage = lineage
        new.createsRepository = .public
        return try store.commit(new)
    }

    /// The card of a revision (a ref name or id) of a model repository.
    public func card(_ repository: RepositoryName, revision: String = "main") throws -> ModelCard {
        guard let resolved = try store.resolve(repository, revision: revision) else {
            throw RegistryError.revisionNotFound(repository: repository, revision: revision)
        }
        guard let variant = try store.variant(of: resolved.id) else {
            throw RegistryError.notAModel(repository, revision: resolved.id)
        }
        return try ModelCard(revision: resolved, variant: variant, files: store.files(of: resolved.id),
                             lineage: store.lineage(of: resolved.id), metrics: store.metrics(of: resolved.id))
    }
}

extension HubRegistry {
    /// The files of a registered model, `namespace/name[@revision]`, read in place from the
    /// blob store; the revision it resolved to comes with them.
    public func modelFiles(_ reference: String) throws -> (files: ModelFiles, revision: String) {
        let parts = reference.split(separator: "@", maxSplits: 1).map(String.init)
        let name = try RepositoryName(parts.first ?? "")
        let card = try card(name, revision: parts.count > 1 ? parts[1] : "main")
        func blob(_ path: String) throws -> URL? {
            try card.files.first { $0.path == path }.map { try blobs.fileURL(for: $0.sha256) }
        }
        guard let config = try blob("config.json"), let weights = try blob("model.safetensors"), let tokenizer = try blob("tokenizer.json") else {
            throw RegistryError.invalidVariant(path: "\(name)@\(card.revision)", reason: "lacks config.json, model.safetensors or tokenizer.json")
        }
        return (ModelFiles(config: config, weights: weights, tokenizer: tokenizer, tokenizerConfig: try blob("tokenizer_config.json")), card.revision)
    }
}
