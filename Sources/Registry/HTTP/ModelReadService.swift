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

    func revision(_ repository: String, _ revision: String) throws -> (RepositoryName, Revision) {
        guard let name = try? RepositoryName(repository), let stored = try registry.store.repository(name), !stored.isPrivate else {
            throw Failure.repositoryNotFound(repository)
        }
        guard let resolved = try registry.store.resolve(name, revision: revision) else { throw Failure.revisionNotFound(revision) }
        return (name, resolved)
    }

    /// `GET /api/models/{repo}[/revision/{rev}]`: the fields huggingface_hub reads.
    public func info(repository: String, revision: String) throws -> [String: Any] {
        let (name, resolved) = try self.revision(repository, revision)
        let files = try registry.store.files(of: resolved.id)
        return [
            "id": name.description, "modelId": name.description, "sha": resolved.id, "private": false, "disabled": false,
            "gated": false, "lastModified": resolved.createdAt, "createdAt": resolved.createdAt, "tags": [String](),
            "siblings": files.map { ["rfilename": $0.path] },
            "usedStorage": files.reduce(0) { $0 + $1.size },
        ]
    }

    /// `GET /api/models/{repo}/tree/{rev}[/{path}]`: files (and the folders that lead to them) under `path`.
    public func tree(repository: String, revision: String, path: String, recursive: Bool) throws -> [[String: Any]] {
        let (_, resolved) = try self.revision(repository, revision)
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
    public func resolve(repository: String, revision: String, path: String) throws -> ResolvedFile {
        let (_, resolved) = try self.revision(repository, revision)
        guard let file = try registry.store.files(of: resolved.id).first(where: { $0.path == path }) else { throw Failure.entryNotFound(path) }
        return ResolvedFile(revision: resolved.id, file: file, url: try registry.blobs.fileURL(for: file.sha256))
    }
}
