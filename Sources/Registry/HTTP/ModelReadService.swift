import Foundation
import HubCore

/// What the Hugging Face compatible read API answers, without any HTTP: repository and
/// revision info, file listings, and where a file's bytes are. Handlers call this; tests can too.
public struct ModelReadService: Sendable {
    public let registry: HubRegistry

    public init(registry: HubRegistry) {
        self.registry = registry
    }

    public enum Failure: Error, Equatable {
        case repositoryNotFound(String)
        case revisionNotFound(String)
        case entryNotFound(String)
    }

    public struct ResolvedFile: Sendable {
        public let revision: String
        public let file: RevisionFile
        public let url: URL
    }

    /// A revision the reader may see. Private repositories answer exactly like missing ones
    /// to anonymous readers, so that their names do not leak.
    func revision(_ repository: String, _ revision: String, reader: AccessToken?) throws -> (Repository, Revision) {
        guard let name = try? RepositoryName(repository), let stored = try registry.store.repository(name),
              !stored.isPrivate || reader != nil else {
            throw Failure.repositoryNotFound(repository)
        }
        guard let resolved = try registry.store.resolve(name, revision: revision) else { throw Failure.revisionNotFound(revision) }
        return (stored, resolved)
    }

    /// `GET /api/models/{repo}[/revision/{rev}]`: the fields huggingface_hub reads.
    public func info(repository: String, revision: String, reader: AccessToken? = nil) throws -> [String: Any] {
        let (stored, resolved) = try self.revision(repository, revision, reader: reader)
        let files = try registry.store.files(of: resolved.id)
        let name = stored.name
        return [
            "id": name.description, "modelId": name.description, "sha": resolved.id, "private": stored.isPrivate, "disabled": false,
            "gated": false, "lastModified": resolved.createdAt, "createdAt": stored.createdAt,
            "tags": try registry.store.tags(of: name).map(\.name),
            "siblings": files.map { ["rfilename": $0.path] },
            "usedStorage": files.reduce(0) { $0 + $1.size },
        ]
    }

    /// `GET /api/models/{repo}/tree/{rev}[/{path}]`: files (and the folders that lead to them) under `path`.
    public func tree(repository: String, revision: String, path: String, recursive: Bool, reader: AccessToken? = nil) throws -> [[String: Any]] {
        let (_, resolved) = try self.revision(repository, revision, reader: reader)
        let prefix = path.isEmpty ? "" : path.hasSuffix("/") ? path : path + "/"
        var entries: [[String: Any]] = [], folders = Set<String>()
        for file in try registry.store.files(of: resolved.id) where file.path.hasPrefix(prefix) {
            let rest = file.path.dropFirst(prefix.count)
            if !recursive, let slash = rest.firstIndex(of: "/") {
                folders.insert(prefix + rest[..<slash])
                continue
            }
            entries.append(["type": "file", "path": file.path, "size": file.size, "oid": file.sha256.hex,
                            "lfs": ["oid": file.sha256.hex, "size": file.size, "pointerSize": 134]])
        }
        if entries.isEmpty, folders.isEmpty, !path.isEmpty { throw Failure.entryNotFound(path) }
        return folders.sorted().map { ["type": "directory", "path": $0, "oid": resolved.id, "size": 0] } + entries
    }

    /// `/{repo}/resolve/{rev}/{path}`: the stored blob of one file.
    public func resolve(repository: String, revision: String, path: String, reader: AccessToken? = nil) throws -> ResolvedFile {
        let (_, resolved) = try self.revision(repository, revision, reader: reader)
        guard let file = try registry.store.files(of: resolved.id).first(where: { $0.path == path }) else { throw Failure.entryNotFound(path) }
        return ResolvedFile(revision: resolved.id, file: file, url: try registry.blobs.fileURL(for: file.sha256))
    }

    /// `GET /api/models/{repo}/card[/{rev}]`: the model card with lineage and metrics.
    public func card(repository: String, revision: String, reader: AccessToken? = nil) throws -> ModelCard {
        let (stored, resolved) = try self.revision(repository, revision, reader: reader)
        return try registry.card(stored.name, revision: resolved.id)
    }

    /// `GET /api/models/{repo}/variants[/{rev}]`: the base and every variant made from it,
    /// with their lineage records and metrics.
    public func family(repository: String, revision: String, reader: AccessToken? = nil) throws -> [FamilyMember] {
        let (stored, resolved) = try self.revision(repository, revision, reader: reader)
        return try registry.family(of: stored.name, revision: resolved.id, includePrivate: reader != nil)
    }

    /// `GET /api/models/{repo}/lineage[/{rev}]`: the chain from a revision back to its base.
    public func lineage(repository: String, revision: String, reader: AccessToken? = nil) throws -> [LineageNode] {
        let (stored, resolved) = try self.revision(repository, revision, reader: reader)
        return try registry.lineage(of: stored.name, revision: resolved.id, includePrivate: reader != nil)
    }

    /// `GET /api/models`: repositories the reader may see, by name, after `cursor`.
    public func list(search: String?, after cursor: String?, limit: Int, reader: AccessToken?) throws -> (models: [[String: Any]], next: String?) {
        let page = try registry.store.repositories(search: search, after: cursor, limit: limit + 1, includePrivate: reader != nil)
        let shown = page.prefix(limit)
        var models: [[String: Any]] = []
        for repository in shown {
            let main = try registry.store.resolve(repository.name, revision: "main")
            models.append(["id": repository.name.description, "modelId": repository.name.description, "private": repository.isPrivate,
                           "sha": main?.id ?? NSNull(), "lastModified": main?.createdAt ?? repository.createdAt,
                           "createdAt": repository.createdAt])
        }
        return (models, page.count > limit ? shown.last?.name.description : nil)
    }
}
