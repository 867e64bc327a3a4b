import Foundation
import HubCore
import HubTestSupport
@testable import Registry
import Testing

@Suite("Registry integrity check")
struct IntegrityTests {
    @Test("fsck passes a sound registry and names a corrupted blob, a missing one and a stray file")
    func detectsDamage() throws {
        let directory = try TemporaryDirectory()
        let registry = try HubRegistry(dataDirectory: directory.path("hub"))
        let content = try makeContent(directory, files: ["a.bin": randomBytes(10_000, seed: 1), "b.bin": randomBytes(20_000, seed: 2)])
        let revision = try registry.commitDirectory(content, to: RepositoryName("team/files"), message: "test", author: "test")
        let clean = try RegistryCheck(registry: registry).run()
        #expect(clean.isClean && clean.blobsVerified == 2 && clean.bytesVerified == 30_000 && clean.revisions == 1)

        let files = try registry.store.files(of: revision.id)
        let a = try #require(files.first { $0.path == "a.bin" }), b = try #require(files.first { $0.path == "b.bin" })
        var bytes = try Data(contentsOf: registry.blobs.fileURL(for: a.sha256))
        bytes[0] ^= 0xFF
        try bytes.write(to: registry.blobs.fileURL(for: a.sha256))
        try FileManager.default.removeItem(at: registry.blobs.fileURL(for: b.sha256))
        try Data("x".utf8).write(to: directory.path("hub/blobs/sha256/stray.txt"))
        let report = try RegistryCheck(registry: registry).run()
        #expect(report.problems.count == 3, "\(report.problems)")
        #expect(report.problems.contains { $0.contains(a.sha256.hex) && $0.contains("does not hash") })
        #expect(report.problems.contains { $0.contains(b.sha256.hex) && $0.contains("missing") })
        #expect(report.problems.contains { $0.contains("stray.txt") })
        // The quick check sees the missing file but cannot see flipped bits.
        #expect(try RegistryCheck(registry: registry).run(rehash: false).problems.count == 2)
    }
}
