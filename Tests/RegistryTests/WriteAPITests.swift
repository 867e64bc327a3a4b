import Foundation
import HubCore
import HubTestSupport
@testable import Registry
import Testing

/// The write API over loopback with the real libcurl client: uploads, commits, tokens, scopes,
/// private repositories and every refusal.
@Suite("Registry write API", .serialized)
struct WriteAPITests {
    func registry(_ directory: TemporaryDirectory) throws -> HubRegistry {
        try HubRegistry(dataDirectory: directory.path("hub"))
    }

    @Test("first start writes an owner-only admin token file once; a push with it commits every file, downloadable byte for byte")
    func pushAndDownload() async throws {
        let directory = try TemporaryDirectory()
        let registry = try registry(directory)
        let files = ["config.json": Data("{\"a\": 1}".utf8), "weights/part-1.bin": randomBytes(3_000_000, seed: 1),
                     "weights/part-2.bin": randomBytes(1_234_567, seed: 2)]
        let content = try makeContent(directory, files: files)
        try await withServer(registry) { port in
            let tokenFile = AdminTokenFile.url(in: registry.dataDirectory)
            let mode = try FileManager.default.attributesOfItem(atPath: tokenFile.path)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            #expect(try HubServer.prepare(registry) == nil, "a second start must not mint another admin token")
            let token = try #require(AdminTokenFile.read(in: registry.dataDirectory))
            let client = HubClient(endpoint: "http://127.0.0.1:\(port)", token: token)
            var options = HubClient.PushOptions()
            options.message = "first push"
            let result = try client.push(directory: content, to: RepositoryName("team/files"), options: options)
            #expect(result.files == 3)
            #expect(result.sentBytes == files.values.reduce(0) { $0 + $1.count })
            // Pushing the same content again sends nothing (every blob is there) and commits
            // nothing (the head already holds it): a retried push is harmless.
            options.message = "again"
            let again = try client.push(directory: content, to: RepositoryName("team/files"), options: options)
            #expect(again.sentBytes == 0 && again.revision == result.revision)
            options.parentCommit = String(repeating: "0", count: 40)   // even with a stale parent, as a retry would send
            #expect(try client.push(directory: content, to: RepositoryName("team/files"), options: options).revision == result.revision)
            options.parentCommit = nil
            // A real change is a new revision on top.
            try Data("{\"a\": 2}".utf8).write(to: content.appendingPathComponent("config.json"))
            let changed = try client.push(directory: content, to: RepositoryName("team/files"), options: options)
            #expect(changed.sentBytes == 8)
            let revision = try #require(try registry.store.resolve(RepositoryName("team/files"), revision: "main"))
            #expect(revision.id == changed.revision && revision.parentID == result.revision && revision.author == "admin")
            for (path, data) in files {
                let target = directory.path("download-\(path.replacingOccurrences(of: "/", with: "_"))")
                try HubClient(endpoint: "http://127.0.0.1:\(port)", token: nil).download("/team/files/resolve/\(result.revision)/\(path)", to: target)
                #expect(try Data(contentsOf: target) == data, "\(path)")
            }
        }
    }

    @Test("an interrupted upload resumes from the offset the server reports, sending only the rest")
    func resumableUpload() async throws {
        let directory = try TemporaryDirectory()
        let registry = try registry(directory)
        let bytes = randomBytes(5_000_000, seed: 3)
        let file = directory.path("blob.bin")
        try bytes.write(to: file)
        let digest = SHA256Digest.of(bytes)
        try await withServer(registry) { port in
            let token = try #require(AdminTokenFile.read(in: registry.dataDirectory))
            let begun = try rawRequest("POST", port: port, path: "/api/uploads", body: Data(#"{"sha256": "\#(digest.hex)", "size": 5000000}"#.utf8), token: token)
            #expect(begun.status == 201)
            let id = try #require(begun.json?["id"] as? String)
            let first = try rawRequest("PATCH", port: port, path: "/api/uploads/\(id)", headers: ["Upload-Offset": "0"],
                                       body: bytes.prefix(2_000_000), token: token)
            #expect(first.status == 200 && first.json?["offset"] as? Int == 2_000_000)
            // A chunk at the wrong offset is refused and says where the upload stands.
            let wrong = try rawRequest("PATCH", port: port, path: "/api/uploads/\(id)", headers: ["Upload-Offset": "100"],
                                       body: bytes[100 ..< 200], token: token)
            #expect(wrong.status == 409 && wrong.headers["upload-offset"] == "2000000")
            // A chunk that runs past the announced size changes nothing.
            let past = try rawRequest("PATCH", port: port, path: "/api/uploads/\(id)", headers: ["Upload-Offset": "2000000"],
                                      body: bytes.suffix(3_000_000) + Data([1]), token: token)
            #expect(past.status == 400)
            #expect(try rawRequest("HEAD", port: port, path: "/api/uploads/\(id)", token: token).headers["upload-offset"] == "2000000")
            let sent = try HubClient(endpoint: "http://127.0.0.1:\(port)", token: token).uploadBlob(file, sha256: digest, size: bytes.count, chunkSize: 1 << 20)
            #expect(sent == 3_000_000)
            #expect(try registry.blobs.verify(digest))
            #expect(try registry.store.blobSize(digest) == bytes.count)
            #expect(try registry.store.allUploads().isEmpty)
        }
    }

    @Test("bytes that do not hash to the announced sha256 are discarded: no blob, no upload left")
    func wrongDigest() async throws {
        let directory = try TemporaryDirectory()
        let registry = try registry(directory)
        try await withServer(registry) { port in
            let token = try #require(AdminTokenFile.read(in: registry.dataDirectory))
            let before = try RegistrySnapshot(registry)
            let claimed = SHA256Digest.of(Data("something else".utf8))
            let begun = try rawRequest("POST", port: port, path: "/api/uploads", body: Data(#"{"sha256": "\#(claimed.hex)", "size": 5}"#.utf8), token: token)
            let id = try #require(begun.json?["id"] as? String)
            let answer = try rawRequest("PATCH", port: port, path: "/api/uploads/\(id)", headers: ["Upload-Offset": "0"], body: Data("hello".utf8), token: token)
            #expect(answer.status == 422 && answer.headers["x-error-code"] == "DigestMismatch")
            #expect((answer.json?["error"] as? String)?.contains(claimed.hex) == true)
            #expect(try RegistrySnapshot(registry) == before)
            #expect(!registry.blobs.contains(claimed))
        }
    }

    @Test("tokens: missing, malformed, unknown and under-scoped tokens are refused with 401 or 403, and nothing changes")
    func scopes() async throws {
        let directory = try TemporaryDirectory()
        let registry = try registry(directory)
        try await withServer(registry) { port in
            let admin = try #require(AdminTokenFile.read(in: registry.dataDirectory))
            let adminClient = HubClient(endpoint: "http://127.0.0.1:\(port)", token: admin)
            let reader = try adminClient.createToken(user: "reader", label: "dashboards", scope: .read)
            let writer = try adminClient.createToken(user: "ci", label: nil, scope: .write)
            #expect(TokenSecret.isWellFormed(reader) && reader != writer)
            // Only the hash is stored.
            let database = (registry.store as! SQLiteMetadataStore).database
            #expect(try database.query("SELECT 1 FROM tokens WHERE secret_sha256 = ?", [.text(reader)]).isEmpty)
            #expect(try registry.store.token(secretDigest: TokenSecret.digest(reader))?.scope == .read)

            let before = try RegistrySnapshot(registry)
            let upload = Data(#"{"sha256": "\#(SHA256Digest.of(Data()).hex)", "size": 0}"#.utf8)
            let cases: [(String?, Int, String)] = [
                (nil, 401, "Unauthorized"), ("hub_nope", 401, "InvalidToken"),
                ("hub_" + String(repeating: "0", count: 64), 401, "InvalidToken"), (reader, 403, "InsufficientScope"),
            ]
            for (token, status, code) in cases {
                let answer = try rawRequest("POST", port: port, path: "/api/uploads", body: upload, token: token)
                #expect(answer.status == status && answer.headers["x-error-code"] == code, "\(token ?? "no token")")
                #expect(answer.json?["error"] is String)
            }
            let raw = try rawRequest("POST", port: port, path: "/api/uploads", headers: ["Authorization": "Basic abc"], body: upload)
            #expect(raw.status == 401 && raw.headers["www-authenticate"] == "Bearer")
            let commit = Data(#"{"files": []}"#.utf8)
            #expect(try rawRequest("POST", port: port, path: "/api/models/a/b/commit/main", body: commit, token: reader).status == 403)
            #expect(try rawRequest("POST", port: port, path: "/api/tokens", body: Data(#"{"scope": "admin"}"#.utf8), token: writer).status == 403)
            #expect(try RegistrySnapshot(registry) == before)
            let whoami = try rawRequest("GET", port: port, path: "/api/whoami-v2", token: writer)
            #expect(whoami.json?["name"] as? String == "ci")
            // Listing shows no secret; revoking takes effect at once.
            let listing = try adminClient.tokens()
            #expect(listing.map(\.user) == ["admin", "reader", "ci"])
            let listed = try rawRequest("GET", port: port, path: "/api/tokens", token: admin)
            #expect(listed.status == 200)
            let writerID = try #require(listing.first { $0.user == "ci" }?.id)
            try adminClient.revokeToken(id: writerID)
            #expect(try rawRequest("GET", port: port, path: "/api/whoami-v2", token: writer).status == 401)
            #expect(try adminClient.tokens().first { $0.id == writerID }?.revokedAt != nil)
            #expect(throws: HubClientError.self) { try adminClient.revokeToken(id: writerID) }
        }
    }

    @Test("private repositories answer anonymous readers exactly like missing ones, and are readable with any token")
    func privateRepositories() async throws {
        let directory = try TemporaryDirectory()
        let registry = try registry(directory)
        let content = try makeContent(directory, files: ["notes.txt": Data("secret".utf8)])
        let cache = directory.path("hf-cache")
        try await withServer(registry) { port in
            let admin = try #require(AdminTokenFile.read(in: registry.dataDirectory))
            let client = HubClient(endpoint: "http://127.0.0.1:\(port)", token: admin)
            var options = HubClient.PushOptions()
            options.isPrivate = true
            _ = try client.push(directory: content, to: RepositoryName("team/private"), options: options)
            let reader = try client.createToken(user: "reader", label: nil, scope: .read)
            for path in ["/api/models/team/private", "/team/private/resolve/main/notes.txt", "/api/models/team/private/tree/main"] {
                let anonymous = try rawRequest("GET", port: port, path: path)
                let missing = try rawRequest("GET", port: port, path: path.replacingOccurrences(of: "private", with: "absent"))
                #expect(anonymous.status == 404 && anonymous.headers["x-error-code"] == "RepoNotFound", "\(path)")
                #expect(missing.status == 404 && missing.headers["x-error-code"] == "RepoNotFound")
                #expect(try rawRequest("GET", port: port, path: path, token: reader).status == 200, "\(path)")
            }
            let listed = try rawRequest("GET", port: port, path: "/api/models")
            #expect(listed.status == 200)
            let script = """
            from huggingface_hub import hf_hub_download
            from huggingface_hub.errors import RepositoryNotFoundError
            import os
            path = hf_hub_download("team/private", "notes.txt")
            print(open(path).read())
            """
            let (status, output) = try HuggingFaceProtocolTests.python(script, port: port, cache: cache, token: reader)
            #expect(status == 0 && output.contains("secret"), "\(output)")
            let (anonymousStatus, anonymousOutput) = try HuggingFaceProtocolTests.python(script, port: port, cache: directory.path("other-cache"))
            #expect(anonymousStatus != 0 && anonymousOutput.contains("RepositoryNotFoundError"), "\(anonymousOutput)")
        }
    }

    @Test("bad requests get the right 4xx with a message naming the problem, and change nothing")
    func badInput() async throws {
        let directory = try TemporaryDirectory()
        let registry = try registry(directory)
        let content = try makeContent(directory, files: ["a.txt": Data("a".utf8)])
        var limits = HubServer.Limits()
        limits.jsonBody = 64 << 10
        limits.uploadChunk = 1 << 20
        try await withServer(registry, limits: limits) { port in
            let token = try #require(AdminTokenFile.read(in: registry.dataDirectory))
            let client = HubClient(endpoint: "http://127.0.0.1:\(port)", token: token)
            let pushed = try client.push(directory: content, to: RepositoryName("team/files"))
            let known = SHA256Digest.of(Data("a".utf8)).hex
            let unknown = SHA256Digest.of(Data("b".utf8)).hex
            let before = try RegistrySnapshot(registry)
            func commit(_ repository: String, _ json: String, branch: String = "main") throws -> (Int, String?, String) {
                let answer = try rawRequest("POST", port: port, path: "/api/models/\(repository)/commit/\(branch)", body: Data(json.utf8), token: token)
                return (answer.status, answer.headers["x-error-code"], answer.json?["error"] as? String ?? "")
            }
            let cases: [(String, String, String, Int, String)] = [
                ("traversal in a path", "team/files", #"{"files": [{"path": "../../etc/passwd", "sha256": "\#(known)"}]}"#, 400, "'..'"),
                ("absolute path", "team/files", #"{"files": [{"path": "/etc/passwd", "sha256": "\#(known)"}]}"#, 400, "relative"),
                ("a blob never uploaded", "team/files", #"{"files": [{"path": "a.txt", "sha256": "\#(known)"}, {"path": "b.txt", "sha256": "\#(unknown)"}]}"#, 422, unknown),
                ("a malformed digest", "team/files", #"{"files": [{"path": "a.txt", "sha256": "xyz"}]}"#, 400, "sha256"),
                ("a missing field", "team/files", #"{"message": "m"}"#, 400, "files"),
                ("not JSON", "team/files", "{nope", 400, "JSON"),
                ("no files", "team/new", #"{"files": []}"#, 400, "at least one file"),
                ("a stale parent", "team/files", #"{"parent_commit": "\#(String(repeating: "0", count: 40))", "files": [{"path": "renamed.txt", "sha256": "\#(known)"}]}"#, 409, pushed.revision),
                ("lineage to a missing parent", "team/new", #"{"lineage": {"parent": "team/absent"}, "files": [{"path": "a.txt", "sha256": "\#(known)"}]}"#, 422, "recipe.json"),
                ("a repository name with '..'", "team/a..b", #"{"files": [{"path": "a.txt", "sha256": "\#(known)"}]}"#, 400, "'..'"),
            ]
            for (what, repository, json, status, fragment) in cases {
                let (found, code, message) = try commit(repository, json)
                #expect(found == status, "\(what): \(found) \(code ?? "") \(message)")
                #expect(message.contains(fragment), "\(what): '\(message)' should mention '\(fragment)'")
            }
            #expect(try commit("team/files", #"{"files": [{"path": "a.txt", "sha256": "\#(known)"}]}"#, branch: "bad..name").0 == 400)
            // Encoded traversal in the URL never reaches a repository.
            for path in ["/api/models/..%2F..%2Fetc/passwd", "/team%2F..%2F..%2Fetc/files/resolve/main/a.txt", "/team/files/resolve/main/..%2F..%2Fregistry.sqlite"] {
                let answer = try rawRequest("GET", port: port, path: path)
                #expect((400 ..< 500).contains(answer.status), "\(path): \(answer.status)")
            }
            // Oversized bodies and headers.
            let huge = Data(#"{"files": [], "message": ""#.utf8) + Data(repeating: 0x61, count: 100_000) + Data(#""}"#.utf8)
            let oversized = try rawRequest("POST", port: port, path: "/api/models/team/files/commit/main", body: huge, token: token)
            #expect(oversized.status == 413, "\(oversized)")
            let begun = try rawRequest("POST", port: port, path: "/api/uploads", body: Data(#"{"sha256": "\#(unknown)", "size": 3000000}"#.utf8), token: token)
            let id = try #require(begun.json?["id"] as? String)
            let chunk = try rawRequest("PATCH", port: port, path: "/api/uploads/\(id)", headers: ["Upload-Offset": "0"], body: Data(count: 2 << 20), token: token)
            #expect(chunk.status == 413 && chunk.headers["x-error-code"] == "BodyTooLarge")
            #expect(try rawRequest("DELETE", port: port, path: "/api/uploads/\(id)", token: token).status == 204)
            // Headers past the 16 KiB limit are refused by the HTTP parser before any handler runs.
            let tooLong = try rawRequest("GET", port: port, path: "/api/models/team/files", headers: ["X-Padding": String(repeating: "x", count: 64 << 10)])
            #expect(tooLong.status == 400, "oversized headers: \(tooLong.status)")
            // Tags never move.
            #expect(try client.tag(RepositoryName("team/files"), revision: pushed.revision, as: "v1") == pushed.revision)
            let snapshotWithTag = try RegistrySnapshot(registry)
            let moved = try rawRequest("POST", port: port, path: "/api/models/team/files/tag/main", body: Data(#"{"tag": "main"}"#.utf8), token: token)
            #expect(moved.status == 409)
            #expect(try RegistrySnapshot(registry) == snapshotWithTag)
            #expect(snapshotWithTag.tables.filter { $0.key != "refs" } == before.tables.filter { $0.key != "refs" })
        }
    }

    @Test("tree and model listings page with Link headers, which the client and huggingface_hub follow to the end")
    func treePaging() async throws {
        let directory = try TemporaryDirectory()
        let registry = try registry(directory)
        let files = Dictionary(uniqueKeysWithValues: (0 ..< 7).map { ("dir/file-\($0).txt", Data("\($0)".utf8)) })
        let content = try makeContent(directory, files: files)
        _ = try registry.commitDirectory(content, to: RepositoryName("team/many"), message: "test", author: "test")
        for i in 1 ... 4 { _ = try registry.commitDirectory(content, to: RepositoryName("team/many-\(i)"), message: "test", author: "test") }
        _ = try registry.commitDirectory(content, to: RepositoryName("other/many"), message: "test", author: "test")
        var limits = HubServer.Limits()
        limits.page = 3
        try await withServer(registry, limits: limits) { port in
            let first = try rawRequest("GET", port: port, path: "/api/models/team/many/tree/main?recursive=true")
            #expect(first.headers["link"]?.contains("rel=\"next\"") == true)
            let all = try HubClient(endpoint: "http://127.0.0.1:\(port)", token: nil).pages("/api/models/team/many/tree/main?recursive=true")
            #expect(all.compactMap { $0["path"] as? String }.sorted() == files.keys.sorted())
            // The model listing pages the same way, carrying the search (with its '/') into the next link.
            let models = try HubClient(endpoint: "http://127.0.0.1:\(port)", token: nil).pages("/api/models?search=team%2Fmany")
            #expect(models.compactMap { $0["id"] as? String } == ["team/many", "team/many-1", "team/many-2", "team/many-3", "team/many-4"])
            let script = """
            from huggingface_hub import HfApi
            print(len([e for e in HfApi().list_repo_tree("team/many", recursive=True) if e.path.startswith("dir/file-")]))
            """
            let (status, output) = try HuggingFaceProtocolTests.python(script, port: port, cache: directory.path("cache"))
            #expect(status == 0 && output.trimmingCharacters(in: .whitespacesAndNewlines) == "7", "\(output)")
        }
    }
}
