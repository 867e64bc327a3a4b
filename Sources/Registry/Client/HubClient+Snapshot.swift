import Foundation
import HubCore

extension HubClient {
    /// A file of a remote revision as its tree listing describes it.
    public struct RemoteFile: Sendable, Equatable {
        public let path: String
        public let size: Int
        /// Present for LFS files (every file of this registry's revisions).
        public let sha256: SHA256Digest?
        /// The git blob id of a small file stored in git, on hubs that have them.
        public let gitID: String?

        /// Checks a downloaded copy's size and hash (sha256, else the git blob id); a copy that
        /// fails is deleted so that the next attempt fetches it afresh.
        public func verify(_ part: URL) throws -> SHA256Digest {
            let size = HubClient.fileSize(part)
            guard size == self.size else {
                try? FileManager.default.removeItem(at: part)
                throw HubClientError.sizeMismatch(path: path, expected: self.size, found: size)
            }
            let digest = try SHA256Digest.ofFile(at: part)
            if let expected = sha256, expected != digest {
                try? FileManager.default.removeItem(at: part)
                throw HubClientError.digestMismatch(path: path, expected: expected.hex, found: digest.hex)
            }
            if sha256 == nil, let gitID {
                let found = try GitBlobID.ofFile(at: part)
                guard found == gitID else {
                    try? FileManager.default.removeItem(at: part)
                    throw HubClientError.digestMismatch(path: path, expected: gitID, found: found)
                }
            }
            return digest
        }
    }

    /// The files of a revision, from the recursive tree listing (all its pages). Paths that
    /// could climb out of a directory are refused.
    public func files(of repository: RepositoryName, revision: String) throws -> [RemoteFile] {
        try pages("/api/models/\(repository)/tree/\(revision)?recursive=true").compactMap { entry in
            guard entry["type"] as? String == "file", let path = entry["path"] as? String, let size = entry["size"] as? Int else { return nil }
            try RevisionPath.validate(path)
            let lfs = (entry["lfs"] as? [String: Any])?["oid"] as? String
            let oid = entry["oid"] as? String
            let sha256 = try (lfs ?? oid.flatMap { $0.count == 64 ? $0 : nil }).map { try SHA256Digest(hex: $0) }
            return RemoteFile(path: path, size: size, sha256: sha256, gitID: oid?.count == 40 ? oid : nil)
        }
    }

    /// `/{repo}/resolve/{revision}/{path}` with each path component escaped.
    static func resolvePath(_ repository: RepositoryName, revision: String, path: String) -> String {
        let encoded = path.split(separator: "/").map { $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? String($0) }
        return "/\(repository)/resolve/\(revision)/\(encoded.joined(separator: "/"))"
    }
}

/// A local cache laid out as huggingface_hub lays out its own, so that transformers and
/// huggingface_hub load what `hubctl pull` put there offline:
///
///     <root>/models--<namespace>--<name>/blobs/<sha256>
///     <root>/models--<namespace>--<name>/snapshots/<revision>/<path> -> ../../blobs/<sha256>
///     <root>/models--<namespace>--<name>/refs/main            (the revision, when it is main's head)
///
/// Files download to `blobs/<sha256>.incomplete` (resumed after an interruption), are checked
/// against their sha256 and size, and only then take their blob name; several download at
/// once.
public struct HuggingFaceCache: Sendable {
    public let root: URL

    public init(root: URL) {
        self.root = root
    }

    /// `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`: where
    /// huggingface_hub looks.
    public static var defaultRoot: URL {
        let environment = ProcessInfo.processInfo.environment
        if let cache = environment["HF_HUB_CACHE"], !cache.isEmpty { return URL(fileURLWithPath: cache) }
        if let home = environment["HF_HOME"], !home.isEmpty { return URL(fileURLWithPath: home).appendingPathComponent("hub") }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/huggingface/hub")
    }

    public func repositoryDirectory(_ repository: RepositoryName) -> URL {
        root.appendingPathComponent("models--\(repository.namespace)--\(repository.name)")
    }

    public struct Outcome: Sendable {
        public let snapshot: URL
        public let files: Int
        public let downloadedBytes: Int
        public let totalBytes: Int
    }

    /// Downloads every file of `revision` (a full revision id) that the cache lacks and links
    /// the snapshot. `isMain` writes `refs/main`, so that loading by name finds it offline.
    /// `progress` hears the bytes done over all files.
    public func pull(_ repository: RepositoryName, revision: String, isMain: Bool, client: HubClient, parallel: Int = 4,
                     progress: (@Sendable (_ done: Int, _ total: Int) -> Void)? = nil) throws -> Outcome {
        let files = try client.files(of: repository, revision: revision)
        guard !files.isEmpty else { throw RegistryError.emptyRevision(repository) }
        for file in files where file.sha256 == nil {
            throw RegistryError.invalidPath(file.path, reason: "the hub gave no sha256 for it, so it cannot be verified")
        }
        let directory = repositoryDirectory(repository)
        let blobs = directory.appendingPathComponent("blobs"), snapshot = directory.appendingPathComponent("snapshots/\(revision)")
        try FileManager.default.createDirectory(at: blobs, withIntermediateDirectories: true)
        let total = files.reduce(0) { $0 + $1.size }
        let state = PullState()
        let missing = files.indices.filter { HubClient.fileSize(blobs.appendingPathComponent(files[$0].sha256!.hex)) != files[$0].size }
        state.add(total - missing.reduce(0) { $0 + files[$1].size })
        let queue = DispatchQueue(label: "pull", attributes: .concurrent), group = DispatchGroup()
        let slots = DispatchSemaphore(value: max(1, parallel))
        for index in missing {
            slots.wait()
            queue.async(group: group) {
                defer { slots.signal() }
                let file = files[index], digest = file.sha256!
                let blob = blobs.appendingPathComponent(digest.hex), part = blobs.appendingPathComponent(digest.hex + ".incomplete")
                do {
                    let before = HubClient.fileSize(part)
                    state.add(before)
                    var reported = before
                    try client.download(HubClient.resolvePath(repository, revision: revision, path: file.path), to: part,
                                        expectedSize: file.size) { done, _ in
                        state.add(done - reported)
                        reported = done
                        progress?(state.done, total)
                    }
                    state.downloaded(HubClient.fileSize(part) - before)
                    _ = try file.verify(part)
                    try? FileManager.default.removeItem(at: blob)
                    try FileManager.default.moveItem(at: part, to: blob)
                } catch {
                    state.fail(error)
                }
            }
        }
        group.wait()
        if let error = state.error { throw error }
        progress?(total, total)
        for file in files {
            let link = snapshot.appendingPathComponent(file.path)
            try FileManager.default.createDirectory(at: link.deletingLastPathComponent(), withIntermediateDirectories: true)
            // From snapshots/<rev>/<dirs…>/<name> back up to the repository directory.
            let depth = file.path.split(separator: "/").count + 1
            let target = String(repeating: "../", count: depth) + "blobs/" + file.sha256!.hex
            let temporary = link.deletingLastPathComponent().appendingPathComponent(".\(link.lastPathComponent).\(UUID().uuidString)")
            try FileManager.default.createSymbolicLink(atPath: temporary.path, withDestinationPath: target)
            guard rename(temporary.path, link.path) == 0 else {
                try? FileManager.default.removeItem(at: temporary)
                throw AtomicWriteError.cannotRename(from: temporary.path, to: link.path, errno: errno)
            }
        }
        if isMain {
            try FileManager.default.createDirectory(at: directory.appendingPathComponent("refs"), withIntermediateDirectories: true)
            try AtomicFile.write(Data(revision.utf8), to: directory.appendingPathComponent("refs/main"))
        }
        return Outcome(snapshot: snapshot, files: files.count, downloadedBytes: state.downloadedBytes, totalBytes: total)
    }
}

/// Counters shared by the download threads.
private final class PullState: @unchecked Sendable {
    private let lock = NSLock()
    private var doneBytes = 0, fetched = 0
    private(set) var error: Error?

    func add(_ bytes: Int) { lock.withLock { doneBytes += bytes } }
    func downloaded(_ bytes: Int) { lock.withLock { fetched += bytes } }
    var done: Int { lock.withLock { doneBytes } }
    var downloadedBytes: Int { lock.withLock { fetched } }
    func fail(_ failure: Error) { lock.withLock { if error == nil { error = failure } } }
}

extension HubClient {
    /// GETs `path` and decodes its JSON body.
    public func get<T: Decodable>(_ type: T.Type, _ path: String) throws -> T {
        let response = try request("GET", path)
        do { return try JSONDecoder().decode(T.self, from: response.body) } catch {
            throw HubClientError.unexpectedResponse(url: url(path), reason: "not a \(T.self) (\(error))")
        }
    }

    /// Who the token belongs to and its scope, as the daemon sees it (`/api/whoami-v2`).
    public func whoami() throws -> (user: String, scope: String, label: String) {
        guard let answer = try json("GET", "/api/whoami-v2") as? [String: Any], let user = answer["name"] as? String else {
            throw HubClientError.unexpectedResponse(url: url("/api/whoami-v2"), reason: "no user name")
        }
        let token = (answer["auth"] as? [String: Any])?["accessToken"] as? [String: Any]
        return (user, token?["role"] as? String ?? "?", token?["displayName"] as? String ?? "")
    }
}

/// Tokens `hubctl login` saved, one per endpoint, in `<data-dir>/credentials.json` (mode
/// 0600), so that later commands against that endpoint need no --token.
public struct CredentialStore: Sendable {
    public let file: URL

    public init(dataDirectory: URL) {
        file = dataDirectory.appendingPathComponent("credentials.json")
    }

    public func token(for endpoint: String) -> String? {
        all()[Self.key(endpoint)]
    }

    public func save(_ token: String, for endpoint: String) throws {
        var tokens = all()
        tokens[Self.key(endpoint)] = token
        try write(tokens)
    }

    /// Forgets the endpoint's token; true when there was one.
    public func remove(for endpoint: String) throws -> Bool {
        var tokens = all()
        guard tokens.removeValue(forKey: Self.key(endpoint)) != nil else { return false }
        try write(tokens)
        return true
    }

    private func all() -> [String: String] {
        guard let data = FileManager.default.contents(atPath: file.path),
              let tokens = try? JSONDecoder().decode([String: String].self, from: data) else { return [:] }
        return tokens
    }

    private func write(_ tokens: [String: String]) throws {
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        let temporary = AtomicFile.temporaryURL(besides: file)
        // Created readable by the owner alone before any secret is written into it.
        guard FileManager.default.createFile(atPath: temporary.path, contents: try encoder.encode(tokens),
                                             attributes: [.posixPermissions: 0o600]) else {
            throw AtomicWriteError.cannotCreate(temporary.path)
        }
        try AtomicFile.commit(temporary, to: file)
    }

    static func key(_ endpoint: String) -> String { endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint }
}

extension HubClient {
    /// A base and every variant made from it (`GET /api/models/{repo}/variants/{rev}`).
    public func family(of repository: RepositoryName, revision: String = "main") throws -> [FamilyMember] {
        try get([FamilyMember].self, "/api/models/\(repository)/variants/\(revision)")
    }

    /// The families of every base model the reader may see.
    public func allFamilies() throws -> [FamilyMember] {
        var members: [FamilyMember] = []
        for model in try pages("/api/models") {
            guard let id = model["id"] as? String, let name = try? RepositoryName(id),
                  let card = try? json("GET", "/api/models/\(name)/card") as? [String: Any],
                  card["kind"] as? String == "base" else { continue }
            members += try family(of: name)
        }
        return members
    }

    /// The chain from a revision back to its base (`GET /api/models/{repo}/lineage/{rev}`).
    public func lineage(of repository: RepositoryName, revision: String = "main") throws -> [LineageNode] {
        try get([LineageNode].self, "/api/models/\(repository)/lineage/\(revision)")
    }

    /// The revision a repository's main branch is at.
    public func mainRevision(of repository: RepositoryName) throws -> String? {
        (try json("GET", "/api/models/\(repository)") as? [String: Any])?["sha"] as? String
    }

    /// The sha256 of a file of a remote revision, hashed as it streams into a temporary file
    /// that is removed afterwards.
    public func hashFile(_ repository: RepositoryName, revision: String, path: String, size: Int, scratch: URL) throws -> SHA256Digest {
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let part = scratch.appendingPathComponent(UUID().uuidString)
        defer { try? FileManager.default.removeItem(at: part) }
        try download(Self.resolvePath(repository, revision: revision, path: path), to: part, expectedSize: size)
        return try SHA256Digest.ofFile(at: part)
    }
}
