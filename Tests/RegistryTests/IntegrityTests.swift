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

    @Test("gc reclaims unreferenced blobs and abandoned uploads past the grace period, never a committed file")
    func garbageCollection() async throws {
        let directory = try TemporaryDirectory()
        let registry = try HubRegistry(dataDirectory: directory.path("hub"))
        let content = try makeContent(directory, files: ["kept.bin": randomBytes(5_000, seed: 3)])
        let revision = try registry.commitDirectory(content, to: RepositoryName("team/files"), message: "m", author: "a")
        let loose = directory.path("loose.bin")
        try randomBytes(7_000, seed: 4).write(to: loose)
        let (orphan, _) = try registry.blobs.ingest(fileAt: loose, expected: nil)
        try registry.store.registerBlob(orphan, size: 7_000)
        let uploads = try BlobUploads(registry: registry)
        let pending = try uploads.begin(sha256: SHA256Digest.of(Data("never finished".utf8)), size: 14, user: "u")
        let (chunk, feed) = AsyncStream<[UInt8]>.makeStream()
        feed.yield([UInt8]("never".utf8))
        feed.finish()
        _ = try await uploads.append(id: pending.id!, offset: 0, body: chunk)

        // Inside the grace period nothing goes.
        #expect(try GarbageCollector(registry: registry).run(grace: 3600) == GarbageCollector.Report())
        let preview = try GarbageCollector(registry: registry).run(grace: 0, dryRun: true)
        #expect(preview == GarbageCollector.Report(blobs: 1, bytes: 7_000, uploads: 1))
        #expect(registry.blobs.contains(orphan))
        #expect(try registry.store.allUploads().count == 1)
        #expect(try GarbageCollector(registry: registry).run(grace: 0) == preview)
        #expect(!registry.blobs.contains(orphan))
        #expect(try registry.store.blobSize(orphan) == nil)
        #expect(try registry.store.allUploads().isEmpty)
        for file in try registry.store.files(of: revision.id) { #expect(try registry.blobs.verify(file.sha256)) }
        #expect(try RegistryCheck(registry: registry).run().isClean)
    }
}
