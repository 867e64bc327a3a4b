import Foundation
import HubCore

/// Mirrors a repository at one revision from any Hugging Face compatible hub into the local
/// registry. Files download into `<data-dir>/mirror/<revision>/`, which survives an
/// interruption so that the next run resumes each file where it stopped; every file is checked
/// against the upstream's hash (sha256 for LFS files, the git blob id otherwise) and size
/// before it counts, and the revision is committed only when all of them are in.
public struct UpstreamMirror {
    public struct Result: Sendable {
        public let revision: Revision
        public let upstreamRevision: String
        public let alreadyMirrored: Bool
        public let downloadedBytes: Int
        public let files: Int
    }

    public let registry: HubRegistry
    public let client: HubClient

    public init(registry: HubRegistry, client: HubClient) {
        self.registry = registry
        self.client = client
    }

    public func mirror(_ repository: RepositoryName, revision: String = "main", as local: RepositoryName? = nil, author: String,
                       progress: ((_ path: String, _ done: Int, _ total: Int) -> Void)? = nil) throws -> Result {
        let local = local ?? repository
        guard let info = try client.json("GET", "/api/models/\(repository)/revision/\(revision)") as? [String: Any],
              let upstream = info["sha"] as? String, !upstream.isEmpty, upstream.allSatisfy({ $0.isHexDigit }) else {
            throw HubClientError.unexpectedResponse(url: client.url("/api/models/\(repository)/revision/\(revision)"), reason: "no revision sha")
        }
        if try registry.store.repository(local) != nil,
           let existing = try registry.store.variants(withSource: ["endpoint": client.endpoint, "repository": repository.description,
                                                                    "revision": upstream], in: local).last {
            return Result(revision: existing, upstreamRevision: upstream, alreadyMirrored: true, downloadedBytes: 0, files: 0)
        }
        let remote = try client.files(of: repository, revision: upstream)
        guard !remote.isEmpty else { throw RegistryError.emptyRevision(repository) }

        let staging = registry.dataDirectory.appendingPathComponent("mirror").appendingPathComponent(upstream)
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        var files: [RevisionFile] = []
        var downloaded = 0
        for file in remote {
            if let digest = file.sha256, try registry.store.blobSize(digest) == file.size, registry.blobs.contains(digest) {
                files.append(RevisionFile(path: file.path, sha256: digest, size: file.size))
                continue
            }
            let part = staging.appendingPathComponent(String(SHA256Digest.of(Data(file.path.utf8)).hex.prefix(32)) + ".part")
            let before = HubClient.fileSize(part)
            let encoded = file.path.split(separator: "/").map { $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? String($0) }
            try client.download("/\(repository)/resolve/\(upstream)/\(encoded.joined(separator: "/"))", to: part, expectedSize: file.size) {
                progress?(file.path, $0, $1)
            }
            downloaded += HubClient.fileSize(part) - before
            let digest = try file.verify(part)
            try registry.blobs.adopt(fileAt: part, as: digest)
            try registry.store.registerBlob(digest, size: file.size)
            files.append(RevisionFile(path: file.path, sha256: digest, size: file.size))
        }
        let source = try String(decoding: JSONSerialization.data(withJSONObject: [
            "format": "mirror", "endpoint": client.endpoint, "repository": repository.description, "revision": upstream,
        ], options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
        var new = NewRevision(repository: local, message: "Mirror \(repository)@\(upstream) from \(client.endpoint)", author: author,
                              files: files)
        let blobURL: (String) throws -> URL? = { path in
            try files.first(where: { $0.path == path }).map { try registry.blobs.fileURL(for: $0.sha256) }
        }
        let record = try LineageRecord.find(blobURL)
        new.variant = try VariantInspector.record(kind: record == nil ? .base : .compressed, files: files, sourceJSON: source, url: blobURL)
        if new.variant != nil, let record, let parent = try localParent(of: repository, revision: upstream) {
            new.lineage = (parent, record.json)
        }
        new.createsRepository = .public
        let committed = try registry.store.commit(new)
        try? FileManager.default.removeItem(at: staging)
        return Result(revision: committed, upstreamRevision: upstream, alreadyMirrored: false, downloadedBytes: downloaded, files: files.count)
    }

    /// The local copy of the variant an upstream compressed variant was made from, when the
    /// upstream is a Compression Hub (its card names the parent revision) and that parent was
    /// mirrored or imported here before (its source record names the same revision).
    func localParent(of repository: RepositoryName, revision: String) throws -> String? {
        guard let card = try? client.json("GET", "/api/models/\(repository)/card/\(revision)") as? [String: Any],
              let parent = (card["lineage"] as? [String: Any])?["parent_revision"] as? String else { return nil }
        if try registry.store.variant(of: parent) != nil { return parent }
        return try registry.store.variants(withSource: ["revision": parent], in: nil).last?.id
    }
}
