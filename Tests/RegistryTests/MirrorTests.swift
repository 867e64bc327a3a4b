import Compressor
import Foundation
import HubCore
import HubTestSupport
@testable import Registry
import Testing

/// Mirroring over libcurl, with a second daemon on loopback as the upstream.
@Suite("Upstream mirror", .serialized)
struct MirrorTests {
    @Test("a mirror of the shipped model from a second daemon hashes identically and records its source; again is a no-op; a compressed child keeps its lineage")
    func mirrorShippedModel() async throws {
        let directory = try TemporaryDirectory()
        let upstream = try HubRegistry(dataDirectory: directory.path("upstream"))
        let name = try RepositoryName("smollm2/SmolLM2-135M-Instruct")
        _ = try BaseModelImporter(registry: upstream).importGGUF(at: Assets.modelGGUF(), as: name, author: "test")
        let card = try upstream.card(name)
        // A compressed child upstream, whose lineage the mirror should carry over.
        let model = try ConvertedModel.directory()
        let variantDirectory = directory.path("variant")
        _ = try Compressor(method: WeightOnlyWidthPruning()).compress(
            config: model.appendingPathComponent("config.json"), weights: model.appendingPathComponent("model.safetensors"),
            companions: [:], ratio: 0.1, calibration: nil, output: variantDirectory)
        let childName = try RepositoryName("smollm2/child")
        _ = try upstream.registerVariant(directory: variantDirectory, as: childName, parent: name, author: "test")
        let local = try HubRegistry(dataDirectory: directory.path("local"))
        try await withServer(upstream) { port in
            let client = HubClient(endpoint: "http://127.0.0.1:\(port)", token: nil)
            var progressCalls = 0
            let result = try UpstreamMirror(registry: local, client: client).mirror(name, author: "test") { _, _, _ in progressCalls += 1 }
            #expect(!result.alreadyMirrored && result.upstreamRevision == card.revision)
            #expect(result.downloadedBytes == card.bytes && progressCalls > 0)
            let mirrored = try local.card(name)
            #expect(mirrored.files == card.files)
            #expect(mirrored.parameters == card.parameters)
            #expect(mirrored.source?["revision"]?.stringValue == card.revision)
            // A pin to the upstream's revision id resolves on the mirror as it does upstream.
            #expect(try local.store.resolve(name, revision: card.revision)?.id == result.revision.id)
            #expect(try local.card(name, revision: card.revision).revision == result.revision.id)
            for file in mirrored.files { #expect(try local.blobs.verify(file.sha256)) }
            let again = try UpstreamMirror(registry: local, client: client).mirror(name, author: "test")
            #expect(again.alreadyMirrored && again.revision.id == result.revision.id && again.downloadedBytes == 0)
            // The child arrives as a compressed variant whose lineage points at the local mirror of its parent.
            let child = try UpstreamMirror(registry: local, client: client).mirror(childName, author: "test")
            let childCard = try local.card(childName)
            #expect(childCard.kind == .compressed && childCard.revision == child.revision.id)
            #expect(childCard.lineage?.parentRevision == result.revision.id)
            #expect(childCard.lineage?.recipe["method"]?.stringValue == "weight-prune")
        }
    }

    @Test("an interrupted download resumes from its partial file; a corrupted one is refused, deleted and fetched afresh next time")
    func resumeAndVerify() async throws {
        let directory = try TemporaryDirectory()
        let upstream = try HubRegistry(dataDirectory: directory.path("upstream"))
        let bytes = randomBytes(4_000_000, seed: 7)
        let content = try makeContent(directory, files: ["big.bin": bytes, "small.txt": Data("hi".utf8)])
        let revision = try upstream.commitDirectory(content, to: RepositoryName("team/data"), message: "test", author: "test")
        let local = try HubRegistry(dataDirectory: directory.path("local"))
        let staging = local.dataDirectory.appendingPathComponent("mirror").appendingPathComponent(revision.id)
        let part = staging.appendingPathComponent(String(SHA256Digest.of(Data("big.bin".utf8)).hex.prefix(32)) + ".part")
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        try await withServer(upstream) { port in
            let mirror = UpstreamMirror(registry: local, client: HubClient(endpoint: "http://127.0.0.1:\(port)", token: nil))
            // A corrupted partial file: the bytes are wrong, so the whole file fails its hash.
            var corrupted = bytes.prefix(1_000_000)
            corrupted[10] ^= 0xFF
            try corrupted.write(to: part)
            #expect(throws: HubClientError.self) { try mirror.mirror(RepositoryName("team/data"), author: "test") }
            #expect(!FileManager.default.fileExists(atPath: part.path))
            #expect(try local.store.repository(RepositoryName("team/data")) == nil)
            // A good partial file: only the rest is downloaded.
            try bytes.prefix(1_500_000).write(to: part)
            let result = try mirror.mirror(RepositoryName("team/data"), author: "test")
            #expect(result.downloadedBytes == 2_500_000 + 2)
            let file = try #require(try local.store.files(of: result.revision.id).first { $0.path == "big.bin" })
            #expect(try Data(contentsOf: local.blobs.fileURL(for: file.sha256)) == bytes)
        }
    }

    @Test("transient failures are retried with exponential back-off before giving up")
    func backoff() throws {
        // Nothing listens on this port: every attempt fails to connect.
        var client = HubClient(endpoint: "http://127.0.0.1:9", token: nil)
        client.attempts = 3
        client.backoff = 0.2
        let start = Date()
        #expect {
            try client.json("GET", "/api/models/a/b")
        } throws: { error in
            guard case HubClientError.gaveUp(_, let attempts, _) = error else { return false }
            return attempts == 3
        }
        #expect(Date().timeIntervalSince(start) >= 0.6, "two back-off sleeps of 0.2 s and 0.4 s")
    }
}
