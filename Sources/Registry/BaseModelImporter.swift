import Checkpoint
import Evaluator
import Foundation
import HubCore

/// Imports a GGUF checkpoint as a base model: converts it to a Hugging Face directory in the
/// data directory's scratch space, stores its files as blobs, and commits one revision with
/// its variant record, all or nothing. Importing the same file again changes nothing.
public struct BaseModelImporter {
    public struct Result: Sendable {
        public let revision: Revision
        /// True when this exact file had been imported before and nothing was written.
        public let alreadyImported: Bool
    }

    public let registry: HubRegistry

    public init(registry: HubRegistry) {
        self.registry = registry
    }

    /// `keepBlocks`: keep the file's Q8_0/Q4_0 matrices as blocks the runtime decodes from
    /// (`GGUFConverter`), instead of an fp32 checkpoint; recorded as the source's `weights`.
    public func importGGUF(at url: URL, as repository: RepositoryName, author: String, keepBlocks: Bool = false,
                           progress: ((_ step: String, _ done: Int, _ total: Int) -> Void)? = nil) throws -> Result {
        let gguf = try GGUFFile(path: url.path)
        let sourceDigest = try SHA256Digest.ofFile(at: url)
        let weightsForm = keepBlocks ? "gguf-blocks" : "fp32"
        if try registry.store.repository(repository) != nil,
           let existing = try registry.store.variants(withSourceSHA256: sourceDigest, in: repository).last(where: { revision in
               // Imports from before the field existed were fp32.
               let source = try registry.store.variant(of: revision.id)?.sourceJSON.map { try JSONValue(json: $0) }
               return (source?["weights"]?.stringValue ?? "fp32") == weightsForm
           }) {
            return Result(revision: existing, alreadyImported: true)
        }
        let scratch = registry.scratchDirectory()
        let converted = scratch.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }

        let summary = try GGUFConverter.convert(gguf, to: converted, keepBlocks: keepBlocks) { _, done, total in progress?("converting", done, total) }
        let weights = try SafetensorsFile(path: converted.appendingPathComponent("model.safetensors").path)
        let parameters = ParameterCount(tensors: try QuantizedTensors.logicalShapes(of: weights))
        var typeCounts: [String: JSONValue] = [:]
        for tensor in gguf.tensors {
            if case .number(let n) = typeCounts[tensor.type.description] ?? .number(0) { typeCounts[tensor.type.description] = .number(n + 1) }
        }
        let source: JSONValue = .object([
            "format": .string("gguf"),
            "file": .string(url.lastPathComponent),
            "sha256": .string(sourceDigest.hex),
            "size": .number(Double(gguf.mappedFile.count)),
            "gguf_name": gguf["general.name"]?.string.map(JSONValue.string) ?? .null,
            "tensor_types": .object(typeCounts),
            "converted_by": .string("hubctl \(HubVersion.current)"),
            "weights": .string(weightsForm),
        ])
        let sourceJSON = String(decoding: try JSONEncoder.sorted.encode(source), as: UTF8.self)
        let configJSON = String(decoding: try summary.config.jsonData(), as: UTF8.self)
        progress?("storing", 0, 1)
        let revision = try registry.commitDirectory(converted, to: repository,
                                                    message: summary.quantization.map { "Import \(url.lastPathComponent) keeping its \(QuantizedTensors.name(of: $0.type).uppercased()) blocks" }
                                                        ?? "Import \(url.lastPathComponent) as an fp32 base model",
                                                    author: author) { files in
            VariantRecord(kind: .base, architecture: summary.config.modelType, parameters: parameters.total,
                          embeddingParameters: parameters.embedding, bytes: files.reduce(0) { $0 + $1.size },
                          configJSON: configJSON, sourceJSON: sourceJSON)
        }
        progress?("storing", 1, 1)
        return Result(revision: revision, alreadyImported: false)
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
