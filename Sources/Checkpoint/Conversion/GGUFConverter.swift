import Foundation
import HubCore

/// What a conversion wrote.
public struct ConversionSummary: Sendable {
    public let directory: URL
    public let config: LlamaConfig
    public let tensorCount: Int
    public let files: [String]
    /// The blocks kept as they were (`keepBlocks`), or nil for an fp32 checkpoint.
    public let quantization: QuantizedTensors.Layout?
}

/// Converts a LLaMA-family GGUF file into a Hugging Face model directory: fp32
/// `model.safetensors`, `config.json`, `generation_config.json`, `tokenizer.json` and
/// `tokenizer_config.json`. The directory appears whole or not at all.
///
/// With `keepBlocks`, a matrix stored in a block type the runtime multiplies with (Q8_0,
/// Q4_0) is written as those very bytes, a U8 tensor in `QuantizedTensors`' layout, its rows
/// put back in Hugging Face's rotary order; the runtime then decodes from the GGUF's own
/// blocks, and nothing is dequantized or quantized again. Every other tensor (norms, and
/// matrices in types the runtime does not multiply with, such as Q4_1 or Q6_K) becomes fp32.
public enum GGUFConverter {
    public static let supportedArchitectures: Set<String> = ["llama"]

    public static func convert(_ gguf: GGUFFile, to destination: URL, keepBlocks: Bool = false,
                               progress: ((_ tensor: String, _ done: Int, _ total: Int) -> Void)? = nil) throws -> ConversionSummary {
        let config = try llamaConfig(of: gguf)
        let tokenizer = try BPETokenizer(gguf: gguf)
        guard tokenizer.vocabularySize == config.vocabSize else {
            throw ConversionError.inconsistent(path: gguf.path, reason: "tokenizer has \(tokenizer.vocabularySize) tokens, the model \(config.vocabSize)")
        }
        let plan = try tensorPlan(of: gguf, config: config)
        let kept = keepBlocks ? plan.filter { $0.info.shape.count == 2 && QuantizedTensors.supported.contains($0.info.type) } : []
        let layout = blockLayout(kept)

        let fileManager = FileManager.default
        if fileManager.fileExists(atPath: destination.path) { throw AtomicWriteError.destinationExists(destination.path) }
        let staging = AtomicFile.temporaryURL(besides: destination)
        try fileManager.createDirectory(at: staging, withIntermediateDirectories: true)
        do {
            var done = 0
            let keptNames = Set(kept.map(\.name))
            let pending = plan.map { item in
                if keptNames.contains(item.name) {
                    let type = item.info.type, rows = item.info.shape[0]
                    let rowBytes = item.info.shape[1] / type.blockSize * type.bytesPerBlock
                    return PendingTensor(name: item.name, dtype: .u8, shape: [rows, rowBytes]) { buffer in
                        writeBlocks(item, from: gguf, config: config, rowBytes: rowBytes, into: buffer)
                        done += 1
                        progress?(item.name, done, plan.count)
                    }
                }
                return PendingTensor(name: item.name, dtype: .f32, shape: item.info.shape) { buffer in
                    try write(item, from: gguf, config: config, into: buffer.bindMemory(to: Float.self))
                    done += 1
                    progress?(item.name, done, plan.count)
                }
            }
            try SafetensorsWriter.write(pending, metadata: ["format": "pt", "converted_from": "gguf"].merging(layout?.metadata ?? [:]) { $1 },
                                        to: staging.appendingPathComponent("model.safetensors"))
            try AtomicFile.write(config.jsonData(), to: staging.appendingPathComponent("config.json"))
            var generation: [String: Any] = ["_from_model_config": true]
            if let bos = config.bosTokenID { generation["bos_token_id"] = bos }
            if let eos = config.eosTokenID { generation["eos_token_id"] = eos }
            if let pad = config.padTokenID { generation["pad_token_id"] = pad }
            try writeJSON(generation, to: staging.appendingPathComponent("generation_config.json"))
            try writeJSON(tokenizer.huggingFaceJSON(), to: staging.appendingPathComponent("tokenizer.json"))
            try writeJSON(tokenizer.huggingFaceConfigJSON(chatTemplate: gguf["tokenizer.chat_template"]?.string,
                                                          maxLength: config.maxPositionEmbeddings),
                          to: staging.appendingPathComponent("tokenizer_config.json"))
            try AtomicFile.commit(staging, to: destination)
        } catch {
            try? fileManager.removeItem(at: staging)
            throw error
        }
        return ConversionSummary(directory: destination, config: config, tensorCount: plan.count,
                                 files: ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"],
                                 quantization: layout)
    }

    /// The layout that names the kept blocks: the type most matrices have (ties to the
    /// smaller), the others as overrides; nil when no block is kept.
    static func blockLayout(_ kept: [PlannedTensor]) -> QuantizedTensors.Layout? {
        let counts = Dictionary(grouping: kept, by: \.info.type).mapValues(\.count)
        guard let type = counts.keys.max(by: { (counts[$0]!, $1.bytesPerBlock) < (counts[$1]!, $0.bytesPerBlock) }) else { return nil }
        var overrides: [String: GGMLType] = [:]
        for item in kept where item.info.type != type { overrides[item.name] = item.info.type }
        return QuantizedTensors.Layout(type: type, overrides: overrides)
    }

    /// The Hugging Face config a GGUF file's `llama.*` metadata describes.
    public static func llamaConfig(of gguf: GGUFFile) throws -> LlamaConfig {
        let architecture = try gguf.requireString("general.architecture")
        guard supportedArchitectures.contains(architecture) else {
            throw ConversionError.unsupportedArchitecture(path: gguf.path, architecture: architecture)
        }
        let p = architecture + "."
        if let scaling = gguf[p + "rope.scaling.type"]?.string, scaling != "none" {
            throw ConversionError.unsupportedFeature(path: gguf.path, feature: "rope scaling '\(scaling)'")
        }
        let heads = try gguf.requireInteger(p + "attention.head_count")
        let hidden = try gguf.requireInteger(p + "embedding_length")
        let vocab = try gguf[p + "vocab_size"]?.integer ?? gguf.requireStringArray("tokenizer.ggml.tokens").count
        let headDim = gguf[p + "attention.key_length"]?.integer
        var config = try LlamaConfig(
            vocabSize: vocab, hiddenSize: hidden,
            intermediateSize: try gguf.requireInteger(p + "feed_forward_length"),
            numHiddenLayers: try gguf.requireInteger(p + "block_count"),
            numAttentionHeads: heads,
            numKeyValueHeads: gguf[p + "attention.head_count_kv"]?.integer ?? heads,
            maxPositionEmbeddings: try gguf.requireInteger(p + "context_length"),
            rmsNormEps: try gguf.requireNumber(p + "attention.layer_norm_rms_epsilon"),
            ropeTheta: gguf[p + "rope.freq_base"]?.number ?? 10000,
            tieWordEmbeddings: gguf.tensorInfo(named: "output.weight") == nil,
            headDim: headDim == hidden / heads ? nil : headDim)
        config.bosTokenID = gguf["tokenizer.ggml.bos_token_id"]?.integer
        config.eosTokenID = gguf["tokenizer.ggml.eos_token_id"]?.integer
        config.padTokenID = gguf["tokenizer.ggml.padding_token_id"]?.integer
        return config
    }

    struct PlannedTensor {
        let name: String
        let info: GGUFTensorInfo
        let permutation: LlamaTensorNames.RotaryPermutation
    }

    /// Every GGUF tensor with its Hugging Face name, checked against the config's shapes.
    static func tensorPlan(of gguf: GGUFFile, config: LlamaConfig) throws -> [PlannedTensor] {
        let h = config.hiddenSize, d = config.resolvedHeadDim
        var expected: [String: [Int]] = [
            "model.embed_tokens.weight": [config.vocabSize, h],
            "model.norm.weight": [h],
        ]
        if !config.tieWordEmbeddings { expected["lm_head.weight"] = [config.vocabSize, h] }
        for layer in 0 ..< config.numHiddenLayers {
            let p = "model.layers.\(layer)."
            expected[p + "input_layernorm.weight"] = [h]
            expected[p + "post_attention_layernorm.weight"] = [h]
            expected[p + "self_attn.q_proj.weight"] = [config.numAttentionHeads * d, h]
            expected[p + "self_attn.k_proj.weight"] = [config.numKeyValueHeads * d, h]
            expected[p + "self_attn.v_proj.weight"] = [config.numKeyValueHeads * d, h]
            expected[p + "self_attn.o_proj.weight"] = [h, config.numAttentionHeads * d]
            expected[p + "mlp.gate_proj.weight"] = [config.intermediateSize, h]
            expected[p + "mlp.up_proj.weight"] = [config.intermediateSize, h]
            expected[p + "mlp.down_proj.weight"] = [h, config.intermediateSize]
        }
        var plan: [PlannedTensor] = []
        for info in gguf.tensors {
            guard let (name, permutation) = LlamaTensorNames.huggingFace(info.name) else {
                throw ConversionError.unexpectedTensor(path: gguf.path, name: info.name)
            }
            guard let shape = expected.removeValue(forKey: name) else {
                throw ConversionError.unexpectedTensor(path: gguf.path, name: info.name)
            }
            guard shape == info.shape else {
                throw ConversionError.shapeMismatch(path: gguf.path, tensor: info.name, expected: shape, found: info.shape)
            }
            guard info.type.isDequantizable else { throw GGUFError.cannotDequantize(tensor: info.name, type: info.type) }
            plan.append(PlannedTensor(name: name, info: info, permutation: permutation))
        }
        if let missing = expected.keys.sorted().first {
            throw ConversionError.missingTensor(path: gguf.path, name: missing)
        }
        return plan
    }

    private static func write(_ item: PlannedTensor, from gguf: GGUFFile, config: LlamaConfig,
                              into output: UnsafeMutableBufferPointer<Float>) throws {
        let raw = gguf.rawBytes(of: item.info)
        guard let heads = rotaryHeads(item, config) else {
            try Dequantizer.dequantize(raw, type: item.info.type, tensor: item.info.name, into: output)
            return
        }
        let scratch = UnsafeMutableBufferPointer<Float>.allocate(capacity: output.count)
        defer { scratch.deallocate() }
        try Dequantizer.dequantize(raw, type: item.info.type, tensor: item.info.name, into: scratch)
        LlamaTensorNames.reorderRotary(scratch.baseAddress!, into: output.baseAddress!, heads: heads,
                                       headDim: config.resolvedHeadDim, columns: item.info.shape[1], toLlamaCpp: false)
    }

    /// The heads whose rows llama.cpp interleaved for its rope (Q or K), or nil for any other tensor.
    private static func rotaryHeads(_ item: PlannedTensor, _ config: LlamaConfig) -> Int? {
        switch item.permutation {
        case .none: nil
        case .queries: config.numAttentionHeads
        case .keys: config.numKeyValueHeads
        }
    }

    /// A kept matrix's blocks, byte for byte; a Q or K projection's rows back in Hugging
    /// Face's rotary order (rows are independent, so whole rows of blocks move).
    private static func writeBlocks(_ item: PlannedTensor, from gguf: GGUFFile, config: LlamaConfig, rowBytes: Int,
                                    into output: UnsafeMutableRawBufferPointer) {
        let raw = gguf.rawBytes(of: item.info)
        guard let heads = rotaryHeads(item, config) else {
            output.copyMemory(from: raw)
            return
        }
        LlamaTensorNames.reorderRotaryRows(raw.baseAddress!, into: output.baseAddress!, heads: heads, headDim: config.resolvedHeadDim,
                                           rowBytes: rowBytes, toLlamaCpp: false)
    }

    private static func writeJSON(_ object: Any, to url: URL) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try AtomicFile.write(data, to: url)
    }
}

public enum ConversionError: Error, Equatable, CustomStringConvertible {
    case unsupportedArchitecture(path: String, architecture: String)
    case unsupportedFeature(path: String, feature: String)
    case unexpectedTensor(path: String, name: String)
    case missingTensor(path: String, name: String)
    case shapeMismatch(path: String, tensor: String, expected: [Int], found: [Int])
    case inconsistent(path: String, reason: String)

    public var description: String {
        switch self {
        case .unsupportedArchitecture(let path, let arch):
            "\(path): architecture '\(arch)' is not supported (supported: \(GGUFConverter.supportedArchitectures.sorted().joined(separator: ", ")))"
        case .unsupportedFeature(let path, let feature): "\(path): \(feature) is not supported yet"
        case .unexpectedTensor(let path, let name): "\(path): tensor '\(name)' has no place in a LLaMA checkpoint"
        case .missingTensor(let path, let name): "\(path): the checkpoint lacks '\(name)'"
        case .shapeMismatch(let path, let tensor, let expected, let found):
            "\(path): tensor '\(tensor)' should have shape \(expected) for this config, found \(found)"
        case .inconsistent(let path, let reason): "\(path): \(reason)"
        }
    }
}
