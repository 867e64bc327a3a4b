import Foundation
import HubCore

extension HubClient {
    public struct PushOptions: Sendable {
        public var message: String?
        public var branch = "main"
        /// Commit only if the branch is still at this revision.
        public var parentCommit: String?
        /// Applies when the push creates the repository.
        public var isPrivate = false
        /// `namespace/name[@revision]` of the model a compressed variant was made from.
        public var lineageParent: String?
        /// Bytes per upload request; an interruption costs at most one chunk.
        public var chunkSize = 16 << 20

        public init() {}
    }

    public struct PushResult: Sendable {
        public let revision: String
        public let files: Int
        /// Bytes sent; blobs the server already had cost nothing.
        public let sentBytes: Int
        public let totalBytes: Int
    }

    /// Pushes every regular file under `directory` (hidden ones excepted) as one revision:
    /// each file's blob is uploaded unless the server has it, then one commit names them all.
    public func push(directory: URL, to repository: RepositoryName, options: PushOptions = PushOptions(),
                     progress: ((_ path: String, _ done: Int, _ total: Int) -> Void)? = nil) throws -> PushResult {
        let files = try DirectoryListing.regularFiles(under: directory)
        guard !files.isEmpty else { throw RegistryError.emptyRevision(repository) }
        var entries: [[String: String]] = []
        var sent = 0, total = 0
        for (path, url) in files {
            let digest = try SHA256Digest.ofFile(at: url)
            let size = Self.fileSize(url)
            sent += try uploadBlob(url, sha256: digest, size: size, chunkSize: options.chunkSize) { done, all in progress?(path, done, all) }
            total += size
            entries.append(["path": path, "sha256": digest.hex])
        }
        var body: [String: Any] = ["files": entries, "private": options.isPrivate]
        if let message = options.message { body["message"] = message }
        if let parent = options.parentCommit { body["parent_commit"] = parent }
        if let lineage = options.lineageParent { body["lineage"] = ["parent": lineage] }
        let answer = try json("POST", "/api/models/\(repository)/commit/\(options.branch)", body: body)
        guard let revision = (answer as? [String: Any])?["commitOid"] as? String else {
            throw HubClientError.unexpectedResponse(url: url("/api/models/\(repository)/commit"), reason: "no commitOid")
        }
        return PushResult(revision: revision, files: files.count, sentBytes: sent, totalBytes: total)
    }

    public func createToken(user: String?, label: String?, scope: TokenScope) throws(HubClientError) -> String {
        var body: [String: Any] = ["scope": scope.rawValue]
        if let user { body["user"] = user }
        if let label { body["label"] = label }
        guard let token = (try json("POST", "/api/tokens", body: body) as? [String: Any])?["token"] as? String else {
            throw .unexpectedResponse(url: url("/api/tokens"), reason: "no token in the answer")
        }
        return token
    }

    public func tokens() throws -> [TokenListing] {
        let response = try request("GET", "/api/tokens")
        do { return try JSONDecoder().decode([TokenListing].self, from: response.body) } catch {
            throw HubClientError.unexpectedResponse(url: url("/api/tokens"), reason: "not a token listing")
        }
    }

    public func revokeToken(id: Int) throws(HubClientError) {
        try request("DELETE", "/api/tokens/\(id)")
    }

    public func tag(_ repository: RepositoryName, revision: String, as tag: String) throws(HubClientError) -> String {
        let answer = try json("POST", "/api/models/\(repository)/tag/\(revision)", body: ["tag": tag])
        return ((answer as? [String: Any])?["revision"] as? String) ?? revision
    }
}
