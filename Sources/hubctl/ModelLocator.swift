import Checkpoint
import Foundation
import HubCore
import Registry
import Transformer

/// Finds a model's files from what a user typed: a Hugging Face style directory, or a
/// registry repository `namespace/name[@revision]` whose blobs are read in place.
struct ModelLocator {
    /// Where set-up put the verified model and BIG-bench files: `$HUB_CACHE`, by default
    /// ~/.cache/compression-hub.
    static var assetCache: URL {
        ProcessInfo.processInfo.environment["HUB_CACHE"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/compression-hub")
    }

    struct Files {
        let config: URL
        let weights: URL
        let tokenizer: URL
        let tokenizerConfig: URL?
        let label: String
    }

    static func locate(_ reference: String, data: DataDirectoryOption) throws -> Files {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: reference, isDirectory: &isDirectory), isDirectory.boolValue {
            let directory = URL(fileURLWithPath: reference)
            let tokenizerConfig = directory.appendingPathComponent("tokenizer_config.json")
            return Files(config: directory.appendingPathComponent("config.json"),
                         weights: directory.appendingPathComponent("model.safetensors"),
                         tokenizer: directory.appendingPathComponent("tokenizer.json"),
                         tokenizerConfig: FileManager.default.fileExists(atPath: tokenizerConfig.path) ? tokenizerConfig : nil,
                         label: directory.lastPathComponent)
        }
        let (files, revision) = try data.open().modelFiles(reference)
        let name = reference.split(separator: "@", maxSplits: 1)[0]
        return Files(config: files.config, weights: files.weights, tokenizer: files.tokenizer, tokenizerConfig: files.tokenizerConfig,
                     label: "\(name)@\(revision.prefix(10))")
    }

    static func load(_ files: Files) throws -> (LlamaModel, BPETokenizer) {
        let config = try LlamaConfig.load(from: files.config)
        let weights = try ModelWeights(config: config, safetensors: SafetensorsFile(path: files.weights.path))
        let tokenizer = try BPETokenizer(huggingFaceJSON: files.tokenizer, tokenizerConfig: files.tokenizerConfig)
        return (try LlamaModel(weights: weights), tokenizer)
    }
}

struct ValidationFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
