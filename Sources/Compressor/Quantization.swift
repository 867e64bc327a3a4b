import Checkpoint
import Foundation
import HubCore

/// What `hubctl quantize` wrote: quantization.json beside the weights, the payload of the
/// variant's lineage edge (schemas/quantization.schema.json). Like a compression recipe it
/// names the parent's exact weights, so compression, fine-tuning and quantization compose in
/// one lineage.
public struct QuantizationRecord: Codable, Sendable, Equatable {
    public struct Kept: Codable, Sendable, Equatable {
        public let name: String
        public let reason: String
    }

    public var schemaVersion = 1
    /// `q8_0` or `q4_0`.
    public let type: String
    /// The output matrix's type (the tied embedding, or lm_head): Q8_0 under Q4_0, which costs
    /// little (one matrix) and keeps the next-token distribution close, as llama.cpp keeps it
    /// in Q6_K.
    public let headType: String
    public let parentCheckpointSHA256: SHA256Digest
    /// Matrices stored as blocks.
    public let quantizedTensors: Int
    /// Matrices left in their float type, and why.
    public let keptMatrices: [Kept]
    /// Sizes of model.safetensors before and after.
    public let parentBytes: Int
    public let bytes: Int
    public let codeVersion: String
    public let createdAt: String

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", type, headType = "head_type", parentCheckpointSHA256 = "parent_checkpoint_sha256"
        case quantizedTensors = "quantized_tensors", keptMatrices = "kept_matrices", parentBytes = "parent_bytes", bytes
        case codeVersion = "code_version", createdAt = "created_at"
    }
}

public enum QuantizationError: Error, Equatable, CustomStringConvertible {
    case unsupportedType(String)
    case alreadyQuantized(String)
    case nothingToQuantize

    public var description: String {
        switch self {
        case .unsupportedType(let name):
            "cannot quantize to '\(name)': the runtime multiplies with \(QuantizedTensors.supported.map(QuantizedTensors.name(of:)).joined(separator: " and "))"
        case .alreadyQuantized(let type):
            "the model is already \(type); quantize the fp32 variant it came from (its quantization.json names it)"
        case .nothingToQuantize: "no matrix of this model has rows that are whole blocks of 32 values"
        }
    }
}

/// Rewrites an fp32 (or F16/BF16) checkpoint with its matrices in Q8_0 or Q4_0 blocks
/// (`QuantizedTensors`), bit for bit what the `gguf` package's quantizer writes. Vectors stay
/// fp32; a matrix whose rows are not whole blocks (a width-pruned 1281) stays as it was and is
/// listed in the record. Under Q4_0 the output matrix (the tied embedding, or lm_head) is Q8_0
/// unless `headType` says otherwise. The directory appears whole or not at all.
public enum ModelQuantizer {
    /// The block type a user or a recipe names (`q8_0`, `q4_0`), refused when the runtime cannot multiply with it.
    public static func blockType(named name: String) throws(QuantizationError) -> GGMLType {
        guard let type = QuantizedTensors.type(named: name) else { throw .unsupportedType(name) }
        return type
    }

    /// The output matrix's default type under `type`.
    public static func defaultHeadType(for type: GGMLType) -> GGMLType { type == .q4_0 ? .q8_0 : type }

    public static func quantize(_ model: ModelFiles, to type: GGMLType, headType: GGMLType? = nil,
                                destination: URL) throws -> QuantizationRecord {
        guard QuantizedTensors.supported.contains(type) else { throw QuantizationError.unsupportedType(type.description) }
        let headType = headType ?? defaultHeadType(for: type)
        guard QuantizedTensors.supported.contains(headType) else { throw QuantizationError.unsupportedType(headType.description) }
        let manager = FileManager.default
        if manager.fileExists(atPath: destination.path) { throw AtomicWriteError.destinationExists(destination.path) }
        let source = try SafetensorsFile(path: model.weights.path)
        if let existing = try QuantizedTensors.layout(of: source) { throw QuantizationError.alreadyQuantized(QuantizedTensors.name(of: existing.type)) }
        let config = try LlamaConfig.load(from: model.config)
        let head = config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight"
        var overrides: [String: GGMLType] = [:]

        var pending: [PendingTensor] = []
        var quantized = 0
        var kept: [QuantizationRecord.Kept] = []
        for entry in source.entries.sorted(by: { $0.name < $1.name }) {
            let name = entry.name
            if entry.shape.count == 2, entry.shape[1] % type.blockSize == 0 {
                let rows = entry.shape[0], columns = entry.shape[1]
                let blockType = name == head ? headType : type
                if blockType != type { overrides[name] = blockType }
                quantized += 1
                pending.append(PendingTensor(name: name, dtype: .u8, shape: [rows, columns / blockType.blockSize * blockType.bytesPerBlock]) { buffer in
                    let values = try source.floats(name)
                    let bytes = try values.withUnsafeBufferPointer { try GGMLQuantizer.encode($0, columns: columns, as: blockType) }
                    bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
                })
            } else {
                if entry.shape.count == 2 {
                    kept.append(.init(name: name, reason: "rows of \(entry.shape[1]) values are not whole blocks of \(type.blockSize)"))
                }
                let shape = entry.shape
                pending.append(PendingTensor(name: name, dtype: .f32, shape: shape) { buffer in
                    let values = try source.floats(name)
                    values.withUnsafeBytes { buffer.copyMemory(from: $0) }
                })
            }
        }
        guard quantized > 0 else { throw QuantizationError.nothingToQuantize }

        let staging = AtomicFile.temporaryURL(besides: destination)
        try manager.createDirectory(at: staging, withIntermediateDirectories: true)
        do {
            let weights = staging.appendingPathComponent("model.safetensors")
            let layout = QuantizedTensors.Layout(type: type, overrides: overrides)
            try SafetensorsWriter.write(pending, metadata: layout.metadata.merging(["format": "pt"]) { $1 }, to: weights)
            try manager.copyItem(at: model.config, to: staging.appendingPathComponent("config.json"))
            try manager.copyItem(at: model.tokenizer, to: staging.appendingPathComponent("tokenizer.json"))
            if let tokenizerConfig = model.tokenizerConfig {
                try manager.copyItem(at: tokenizerConfig, to: staging.appendingPathComponent("tokenizer_config.json"))
            }
            let record = QuantizationRecord(
                type: QuantizedTensors.name(of: type), headType: QuantizedTensors.name(of: layout.type(of: head)), parentCheckpointSHA256: try SHA256Digest.ofFile(at: model.weights),
                quantizedTensors: quantized, keptMatrices: kept, parentBytes: try fileSize(model.weights), bytes: try fileSize(weights),
                codeVersion: "hubctl \(HubVersion.current)", createdAt: ISO8601DateFormatter().string(from: Date()))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(encoder.encode(record), to: staging.appendingPathComponent("quantization.json"))
            try AtomicFile.commit(staging, to: destination)
            return record
        } catch {
            try? manager.removeItem(at: staging)
            throw error
        }
    }

    private static func fileSize(_ url: URL) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.intValue ?? 0
    }
}
