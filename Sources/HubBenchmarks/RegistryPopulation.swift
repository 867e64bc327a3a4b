import Foundation
import HubCore
import Registry

/// Fills a data directory with many small model variants (one repository each, sharing one
/// config blob) for the metadata benchmarks: the registry's own commit path, not raw SQL.
enum RegistryPopulation {
    static func run(dataDirectory: String, variants: Int) throws {
        let registry = try HubRegistry(dataDirectory: URL(fileURLWithPath: dataDirectory))
        let config = Data(#"{"architectures": ["LlamaForCausalLM"], "model_type": "llama"}"#.utf8)
        let digest = SHA256Digest.of(config)
        let scratch = registry.scratchDirectory()
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        try config.write(to: scratch.appendingPathComponent("config.json"))
        _ = try registry.blobs.ingest(fileAt: scratch.appendingPathComponent("config.json"), expected: digest)
        try registry.store.registerBlob(digest, size: config.count)
        let existing = try registry.store.repositories().count
        let start = Date()
        for index in existing ..< variants {
            var new = NewRevision(repository: try RepositoryName("bench/variant-\(String(format: "%05d", index))"),
                                  message: "variant \(index)", author: "bench",
                                  files: [RevisionFile(path: "config.json", sha256: digest, size: config.count)])
            new.variant = VariantRecord(kind: .compressed, architecture: "llama", parameters: 134_515_008 - index * 1000,
                                        embeddingParameters: 28_311_552, bytes: config.count, configJSON: String(decoding: config, as: UTF8.self),
                                        sourceJSON: nil)
            new.createsRepository = .public
            _ = try registry.store.commit(new)
        }
        let seconds = Date().timeIntervalSince(start)
        print(String(format: "populated %@ with %d variants (%d new in %.1f s)", dataDirectory, variants, variants - existing, seconds))
    }
}
