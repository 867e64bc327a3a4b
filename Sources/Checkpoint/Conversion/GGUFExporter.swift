import Foundation
import HubCore

/// Writes a model (config.json, model.safetensors, tokenizer.json) as a GGUF file
/// llama.cpp loads: the tokenizer in `tokenizer.ggml.*`, Q and K rows permuted back to
/// llama.cpp's rotary layout, weights in F32, F16, Q8_0 or Q4_0 (norms stay F32; a matrix whose
/// rows do not split into whole 32-element blocks falls back to F16, as llama.cpp's converter
/// does).
///
/// Layouts:
/// - `llama` when every block is alike: the standard hyperparameters.
/// - `deci` when blocks differ in head count or FFN width, or lack attention: llama.cpp's
///   DeciLM architecture reads per-layer arrays for `attention.head_count`,
///   `attention.head_count_kv` and `feed_forward_length`, and runs a block with no heads as
///   attention-free. A block without an MLP is written with an all-zero FFN of one block's
///   width (32), which adds exactly nothing.
/// - Anything else is refused with what would work: a residual that changes width (slicing's
///   shortcut projections), head sizes that differ between blocks, a first block without
///   attention (llama.cpp takes the head size from block 0), rope scaling.
public enum GGUFExporter {
    public enum Layout: String, Sendable { case llama, deci }

    public struct Summary: Sendable {
        public let layout: Layout
        public let type: GGMLType
        public let tensors: Int
        public let bytes: Int
    }

    public enum ExportError: Error, Equatable, CustomStringConvertible {
        case notExpressible(String)

        public var description: String {
            switch self {
            case .notExpressible(let reason):
                "this variant cannot be written as a GGUF llama.cpp runs: \(reason). It still loads in transformers "
                    + "(AutoModelForCausalLM with trust_remote_code=True) and in this project's runtime"
            }
        }
    }

    /// The layout llama.cpp can run this config in, or why there is none.
    public static func layout(of config: LlamaConfig) throws(ExportError) -> Layout {
        let shapes = config.layerShapes
        if let changed = shapes.firstIndex(where: { $0.inputWidth != config.embeddingWidth || $0.attentionOutputWidth != $0.inputWidth
            || $0.outputWidth != $0.inputWidth || $0.attentionShortcut || $0.mlpShortcut }) {
            throw .notExpressible("block \(changed) changes the residual width through a shortcut projection (slicing); llama.cpp has no such "
                                  + "layer. width-prune, depth-prune and prunenet variants keep the width and export")
        }
        let attended = shapes.filter { $0.attentionHeads > 0 }
        if Set(attended.map(\.headDim)).count > 1 {
            throw .notExpressible("its blocks use head sizes \(Set(attended.map(\.headDim)).sorted()); llama.cpp has one head size per model")
        }
        if let first = shapes.first, first.attentionHeads == 0 {
            throw .notExpressible("its first block has no attention, and llama.cpp takes the head size from the first block")
        }
        if let scaling = config.ropeScaling, scaling.ropeType != "default" {
            throw .notExpressible("rope scaling '\(scaling.ropeType)' is not exported yet")
        }
        let uniform = shapes.allSatisfy {
            $0.attentionHeads == shapes[0].attentionHeads && $0.keyValueHeads == shapes[0].keyValueHeads
                && $0.intermediateSize == shapes[0].intermediateSize && $0.intermediateSize > 0
        }
        return uniform ? .llama : .deci
    }

    public static func export(_ files: ModelFiles, as type: GGMLType, name: String, to destination: URL) throws -> Summary {
        guard GGMLQuantizer.writable.contains(type) else { throw GGMLQuantizer.QuantizerError.unsupported(type) }
        let config = try LlamaConfig.load(from: files.config)
        let layout = try layout(of: config)
        let weights = try SafetensorsFile(path: files.weights.path)
        let tokenizer = try BPETokenizer(huggingFaceJSON: files.tokenizer, tokenizerConfig: files.tokenizerConfig)
        guard tokenizer.vocabularySize == config.vocabSize else {
            throw ConversionError.inconsistent(path: files.tokenizer.path, reason: "the tokenizer has \(tokenizer.vocabularySize) tokens, the model \(config.vocabSize)")
        }
        var chatTemplate: String?
        if let url = files.tokenizerConfig, let data = FileManager.default.contents(atPath: url.path),
           let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] {
            chatTemplate = json["chat_template"] as? String
        }

        let metadata = hyperparameters(config, layout: layout, type: type, name: name)
            + tokenizerMetadata(tokenizer, chatTemplate: chatTemplate)
        let tensors = try plan(config, layout: layout, weights: weights, type: type)
        try GGUFWriter.write(metadata: metadata, tensors: tensors, to: destination)
        return Summary(layout: layout, type: type, tensors: tensors.count, bytes: tensors.reduce(0) { $0 + $1.byteCount })
    }

    /// GGUF's `general.file_type`: the type most weights are stored in.
    static func fileType(_ type: GGMLType) -> UInt32 {
        switch type {
        case .f32: 0
        case .f16: 1
        case .q4_0: 2
        default: 7 // q8_0
        }
    }

    static func hyperparameters(_ config: LlamaConfig, layout: Layout, type: GGMLType, name: String) -> [(key: String, value: GGUFValue)] {
        let shapes = config.layerShapes, p = layout.rawValue + "."
        let headDim = shapes.first?.headDim ?? config.resolvedHeadDim
        func perLayer(_ value: (LayerShape) -> Int) -> GGUFValue {
            layout == .llama ? .uint32(UInt32(value(shapes[0]))) : .array(.int32, shapes.map { .int32(Int32(value($0))) })
        }
        var metadata: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string(layout.rawValue)),
            ("general.name", .string(name)),
            ("general.file_type", .uint32(fileType(type))),
            ("general.quantization_version", .uint32(2)),
            (p + "vocab_size", .uint32(UInt32(config.vocabSize))),
            (p + "context_length", .uint32(UInt32(config.maxPositionEmbeddings))),
            (p + "embedding_length", .uint32(UInt32(config.embeddingWidth))),
            (p + "block_count", .uint32(UInt32(shapes.count))),
            (p + "feed_forward_length", perLayer { $0.intermediateSize > 0 ? $0.intermediateSize : zeroFFNWidth }),
            (p + "attention.head_count", perLayer(\.attentionHeads)),
            (p + "attention.head_count_kv", perLayer(\.keyValueHeads)),
            (p + "rope.dimension_count", .uint32(UInt32(headDim))),
            (p + "rope.freq_base", .float32(Float(config.ropeTheta))),
            (p + "attention.layer_norm_rms_epsilon", .float32(Float(config.rmsNormEps))),
        ]
        // The head size, where llama.cpp's default (embedding width / heads of block 0) is not it.
        if layout == .deci || headDim * shapes[0].attentionHeads != config.embeddingWidth {
            metadata.append((p + "attention.key_length", .uint32(UInt32(headDim))))
            metadata.append((p + "attention.value_length", .uint32(UInt32(headDim))))
        }
        return metadata
    }

    /// Width of the all-zero FFN that stands for a missing MLP: one quantization block.
    static let zeroFFNWidth = 32

    static func tokenizerMetadata(_ tokenizer: BPETokenizer, chatTemplate: String?) -> [(key: String, value: GGUFValue)] {
        let special = Set(tokenizer.specialTokenIDs)
        var metadata: [(key: String, value: GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string(tokenizer.preTokenizer.rawValue)),
            ("tokenizer.ggml.tokens", .array(.string, tokenizer.tokens.map { .string($0) })),
            // llama.cpp's token types: 1 normal, 3 control (matched whole, never merged into).
            ("tokenizer.ggml.token_type", .array(.int32, tokenizer.tokens.indices.map { .int32(special.contains($0) ? 3 : 1) })),
            ("tokenizer.ggml.merges", .array(.string, tokenizer.merges.map { .string($0) })),
            ("tokenizer.ggml.add_bos_token", .bool(false)),
            ("tokenizer.ggml.add_space_prefix", .bool(false)),
        ]
        for (key, id) in [("bos", tokenizer.bosTokenID), ("eos", tokenizer.eosTokenID), ("unknown", tokenizer.unknownTokenID),
                          ("padding", tokenizer.padTokenID)] {
            if let id { metadata.append(("tokenizer.ggml.\(key)_token_id", .uint32(UInt32(id)))) }
        }
        if let chatTemplate { metadata.append(("tokenizer.chat_template", .string(chatTemplate))) }
        return metadata
    }

    /// Every tensor llama.cpp expects, in its names, with the bytes it is written as.
    static func plan(_ config: LlamaConfig, layout: Layout, weights: SafetensorsFile, type: GGMLType) throws -> [GGUFWriter.Tensor] {
        let available = Set(weights.entries.map(\.name))
        var used = Set<String>()
        /// A weight as GGUF stores it; `permute` gives the heads of a Q or K projection.
        func tensor(_ ggufName: String, _ name: String, permute heads: Int? = nil, headDim: Int = 0) throws -> GGUFWriter.Tensor {
            guard let entry = weights.entries.first(where: { $0.name == name }) else { throw ConversionError.missingTensor(path: weights.path, name: name) }
            used.insert(name)
            let columns = entry.shape.last ?? 1
            let chosen: GGMLType = entry.shape.count == 1 ? .f32 : columns % type.blockSize == 0 ? type : .f16
            return GGUFWriter.Tensor(name: ggufName, dimensions: entry.shape.reversed(), type: chosen) {
                var values = try weights.floats(name)
                if let heads {
                    var permuted = values
                    values.withUnsafeBufferPointer { source in
                        permuted.withUnsafeMutableBufferPointer { output in
                            LlamaTensorNames.reorderRotary(source.baseAddress!, into: output.baseAddress!, heads: heads, headDim: headDim, columns: columns, toLlamaCpp: true)
                        }
                    }
                    values = permuted
                }
                return try values.withUnsafeBufferPointer { try GGMLQuantizer.encode($0, columns: columns, as: chosen) }
            }
        }
        /// An all-zero matrix [rows, columns] (and a norm of ones), for a block without an MLP.
        func constant(_ ggufName: String, shape: [Int], value: Float) -> GGUFWriter.Tensor {
            let columns = shape.last!
            let chosen: GGMLType = shape.count == 1 ? .f32 : columns % type.blockSize == 0 ? type : .f16
            return GGUFWriter.Tensor(name: ggufName, dimensions: shape.reversed(), type: chosen) {
                let values = [Float](repeating: value, count: shape.reduce(1, *))
                return try values.withUnsafeBufferPointer { try GGMLQuantizer.encode($0, columns: columns, as: chosen) }
            }
        }

        var tensors = [try tensor("token_embd.weight", "model.embed_tokens.weight")]
        let width = config.embeddingWidth
        for (i, shape) in config.layerShapes.enumerated() {
            let p = "model.layers.\(i).", g = "blk.\(i)."
            if shape.attentionHeads > 0 {
                tensors.append(try tensor(g + "attn_norm.weight", p + "input_layernorm.weight"))
                tensors.append(try tensor(g + "attn_q.weight", p + "self_attn.q_proj.weight", permute: shape.attentionHeads, headDim: shape.headDim))
                tensors.append(try tensor(g + "attn_k.weight", p + "self_attn.k_proj.weight", permute: shape.keyValueHeads, headDim: shape.headDim))
                tensors.append(try tensor(g + "attn_v.weight", p + "self_attn.v_proj.weight"))
                tensors.append(try tensor(g + "attn_output.weight", p + "self_attn.o_proj.weight"))
            }
            if shape.intermediateSize > 0 {
                tensors.append(try tensor(g + "ffn_norm.weight", p + "post_attention_layernorm.weight"))
                tensors.append(try tensor(g + "ffn_gate.weight", p + "mlp.gate_proj.weight"))
                tensors.append(try tensor(g + "ffn_up.weight", p + "mlp.up_proj.weight"))
                tensors.append(try tensor(g + "ffn_down.weight", p + "mlp.down_proj.weight"))
            } else {
                tensors.append(constant(g + "ffn_norm.weight", shape: [width], value: 1))
                tensors.append(constant(g + "ffn_gate.weight", shape: [zeroFFNWidth, width], value: 0))
                tensors.append(constant(g + "ffn_up.weight", shape: [zeroFFNWidth, width], value: 0))
                tensors.append(constant(g + "ffn_down.weight", shape: [width, zeroFFNWidth], value: 0))
            }
        }
        tensors.append(try tensor("output_norm.weight", "model.norm.weight"))
        if !config.tieWordEmbeddings { tensors.append(try tensor("output.weight", "lm_head.weight")) }
        if let extra = available.subtracting(used).sorted().first {
            throw ConversionError.unexpectedTensor(path: weights.path, name: extra)
        }
        return tensors
    }
}
