import Foundation
import HubCore
import HubTestSupport
@testable import Registry
import Testing

@Suite("Metadata and blob stores")
struct StoreTests {
    struct Fixture {
        let directory: TemporaryDirectory
        let registry: HubRegistry

        init() throws {
            directory = try TemporaryDirectory()
            registry = try HubRegistry(dataDirectory: directory.path("hub"))
        }

        func file(_ name: String, _ text: String) throws -> URL {
            let url = directory.path(name)
            try Data(text.utf8).write(to: url)
            return url
        }

        func rowCount(_ table: String) throws -> Int {
            let store = registry.store as! SQLiteMetadataStore
            return try store.database.query("SELECT count(*) AS n FROM \(table)").first?.int("n") ?? -1
        }
    }

    @Test("blobs are addressed by their sha256, deduplicated, and verifiable")
    func blobs() throws {
        let fixture = try Fixture()
        let url = try fixture.file("a.txt", "hello blobs")
        let (digest, size) = try fixture.registry.blobs.ingest(fileAt: url, expected: nil)
        #expect(digest == SHA256Digest.of(Data("hello blobs".utf8)))
        #expect(size == 11)
        #expect(fixture.registry.blobs.contains(digest))
        #expect(try fixture.registry.blobs.verify(digest))
        let again = try fixture.registry.blobs.ingest(fileAt: url, expected: digest)
        #expect(again.digest == digest)
        // Corruption on disk is detected.
        let stored = try fixture.registry.blobs.fileURL(for: digest)
        try Data("hello BLOBS".utf8).write(to: stored)
        #expect(try !fixture.registry.blobs.verify(digest))
    }

    @Test("a blob whose bytes do not match the expected sha256 is not stored, and leaves no temporary file")
    func blobMismatch() throws {
        let fixture = try Fixture()
        let url = try fixture.file("a.txt", "actual bytes")
        let wrong = SHA256Digest.of(Data("other bytes".utf8))
        #expect(throws: DigestError.self) { try fixture.registry.blobs.ingest(fileAt: url, expected: wrong) }
        #expect(!fixture.registry.blobs.contains(SHA256Digest.of(Data("actual bytes".utf8))))
        let temporary = fixture.directory.path("hub/blobs/tmp")
        #expect(try FileManager.default.contentsOfDirectory(atPath: temporary.path).isEmpty)
    }

    @Test("revisions chain to their parents, resolve by branch or id, and have 40-hex content ids")
    func revisions() throws {
        let fixture = try Fixture()
        let name = try RepositoryName("team/model")
        let first = try fixture.registry.commitDirectory(try makeDirectory(fixture, ["a.txt": "1"]), to: name,
                                                         message: "first", author: "ada")
        let second = try fixture.registry.commitDirectory(try makeDirectory(fixture, ["a.txt": "2", "b.txt": "3"]), to: name,
                                                          message: "second", author: "ada")
        #expect(first.id.count == 40 && first.id.allSatisfy(\.isHexDigit))
        #expect(first.parentID == nil)
        #expect(second.parentID == first.id)
        #expect(try fixture.registry.store.resolve(name, revision: "main")?.id == second.id)
        #expect(try fixture.registry.store.resolve(name, revision: first.id)?.message == "first")
        #expect(try fixture.registry.store.resolve(name, revision: "nope") == nil)
        #expect(try fixture.registry.store.files(of: second.id).map(\.path) == ["a.txt", "b.txt"])
        #expect(throws: RegistryError.repositoryNotFound(try RepositoryName("team/other"))) {
            try fixture.registry.store.resolve(try RepositoryName("team/other"), revision: "main")
        }
        #expect(throws: RegistryError.notAModel(name, revision: second.id)) { try fixture.registry.card(name) }
    }

    @Test("a commit naming an unregistered blob or a bad path writes nothing")
    func atomicCommit() throws {
        let fixture = try Fixture()
        let name = try RepositoryName("team/model")
        _ = try fixture.registry.store.createRepository(name, isPrivate: false)
        let known = SHA256Digest.of(Data("known".utf8))
        try fixture.registry.store.registerBlob(known, size: 5)
        let unknown = SHA256Digest.of(Data("unknown".utf8))
        let files = [RevisionFile(path: "a", sha256: known, size: 5), RevisionFile(path: "b", sha256: unknown, size: 7)]
        #expect(throws: RegistryError.blobMissing(unknown)) {
            try fixture.registry.store.commit(NewRevision(repository: name, message: "m", author: "a", files: files))
        }
        for path in ["../escape", "/abs", "a//b", "a/./b", "a\\b", ""] {
            #expect(throws: RegistryError.self) {
                try fixture.registry.store.commit(NewRevision(repository: name, message: "m", author: "a",
                                                             files: [RevisionFile(path: path, sha256: known, size: 5)]))
            }
        }
        #expect(try fixture.rowCount("revisions") == 0)
        #expect(try fixture.rowCount("revision_files") == 0)
        #expect(try fixture.rowCount("refs") == 0)
    }

    @Test("repository names that could escape a path or URL are refused",
          arguments: ["../etc", "a/..", "a/b/c", "a", "/b", "a/", ".a/b", "a/b.", "a--b/c", "a/b c", "a/é", String(repeating: "x", count: 97) + "/b"])
    func badNames(text: String) {
        #expect(throws: RepositoryNameError.self) { try RepositoryName(text) }
    }

    @Test func goodNames() throws {
        #expect(try RepositoryName("smollm2/SmolLM2-135M-Instruct").description == "smollm2/SmolLM2-135M-Instruct")
        #expect(try RepositoryName("a_b/c.d-e").name == "c.d-e")
    }

    @Test("a data directory path that is a file is refused")
    func dataDirectoryIsFile() throws {
        let directory = try TemporaryDirectory()
        try Data("x".utf8).write(to: directory.path("file"))
        #expect(throws: RegistryError.self) { try HubRegistry(dataDirectory: directory.path("file")) }
    }

    func makeDirectory(_ fixture: Fixture, _ files: [String: String]) throws -> URL {
        let url = fixture.directory.path("content-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        for (name, text) in files { try Data(text.utf8).write(to: url.appendingPathComponent(name)) }
        return url
    }
}
