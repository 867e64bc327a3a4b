import Checkpoint
import Foundation

/// The weights of one decoder block; a nil sublayer was removed by compression.
public struct BlockWeights: @unchecked Sendable {
    public let shape: LayerShape
    public let inputNorm: UnsafePointer<Float>?
    public let q, k, v, o: Matrix?
    public let attentionShortcut: Matrix?
    public let postAttentionNorm: UnsafePointer<Float>?
    public let gate, up, down: Matrix?
    public let mlpShortcut: Matrix?
}

/// A LLaMA-family model's weights, as views into the memory-mapped safetensors file (fp32
/// tensors and Q8_0/Q4_0 blocks are never copied; F16/BF16 ones are widened once into owned
/// buffers).
public final class ModelWeights: @unchecked Sendable {
    public let config: LlamaConfig
    public let embedding: Matrix
    public let blocks: [BlockWeights]
    public let finalNorm: UnsafePointer<Float>
    public let head: Matrix
    /// Bytes of weight data a decode step streams (every matrix once, the head included).
    public let weightBytes: Int
    private let keepAlive: [AnyObject]

    public convenience init(directory: URL) throws {
        let config = try LlamaConfig.load(from: directory.appendingPathComponent("config.json"))
        let file = try SafetensorsFile(path: directory.appendingPathComponent("model.safetensors").path)
        try self.init(config: config, safetensors: file)
    }

    public convenience init(config: LlamaConfig, safetensors file: SafetensorsFile) throws(RuntimeError) {
        let layout: QuantizedTensors.Layout?
        do { layout = try QuantizedTensors.layout(of: file) } catch { throw .invalidWeights(error.description) }
        try self.init(config: config, names: file.entries.map(\.name), source: file, quantization: layout?.type) { name throws(RuntimeError) in
            guard let entry = file[name] else { return nil }
            let bytes = file.bytes(of: entry).baseAddress!
            switch entry.dtype {
            case .f32:
                return .floats(entry.shape, bytes.assumingMemoryBound(to: Float.self), nil)
            case .f16, .bf16:
                let values: [Float]
                do { values = try file.floats(name) } catch { throw .unsupportedDType(tensor: name, dtype: entry.dtype.rawValue) }
                let buffer = FloatBuffer(values)
                return .floats(entry.shape, UnsafePointer(buffer.pointer), buffer)
            case .u8 where layout != nil:
                // Blocks are read where they lie in the mapping: the model stays quantized in memory.
                return .blocks(QuantizedTensors.logicalShape(of: entry, layout: layout), layout!.type(of: name), bytes)
            default:
                throw .unsupportedDType(tensor: name, dtype: entry.dtype.rawValue)
            }
        }
    }

    /// Weights held in memory (a checkpoint being edited), copied once into owned buffers:
    /// what a compression method runs to measure the effect of a cut before it writes anything.
    public convenience init(config: LlamaConfig, tensors: [String: (shape: [Int], values: [Float])]) throws(RuntimeError) {
        try self.init(config: config, names: Array(tensors.keys), source: nil, quantization: nil) { name throws(RuntimeError) in
            guard let tensor = tensors[name] else { return nil }
            let buffer = FloatBuffer(tensor.values)
            return .floats(tensor.shape, UnsafePointer(buffer.pointer), buffer)
        }
    }

    /// What a lookup finds under a name: fp32 values (and the owner of memory it allocated,
    /// which the weights keep alive), or a matrix's quantized blocks.
    private enum Found {
        case floats([Int], UnsafePointer<Float>, AnyObject?)
        case blocks([Int], GGMLType, UnsafeRawPointer)
    }

    /// Binds every tensor the config calls for, by name, checking its shape; a tensor the
    /// config does not call for is an error. `lookup` answers nil for a missing name.
    private init(config: LlamaConfig, names: [String], source: AnyObject?, quantization: GGMLType?,
                 lookup: (String) throws(RuntimeError) -> Found?) throws(RuntimeError) {
        self.config = config
        self.quantization = quantization
        var owned: [AnyObject] = source.map { [$0] } ?? []
        var used = Set<String>()
        var bytes = 0

        func find(_ name: String, _ shape: [Int]) throws(RuntimeError) -> Found {
            guard let found = try lookup(name) else { throw .missingTensor(name) }
            let foundShape: [Int]
            switch found {
            case .floats(let s, _, let owner):
                foundShape = s
                if let owner { owned.append(owner) }
            case .blocks(let s, _, _): foundShape = s
            }
            guard foundShape == shape else { throw .shapeMismatch(tensor: name, expected: shape, found: foundShape) }
            used.insert(name)
            return found
        }
        func tensor(_ name: String, _ shape: [Int]) throws(RuntimeError) -> UnsafePointer<Float> {
            guard case .floats(_, let data, _) = try find(name, shape) else {
                throw .unsupportedDType(tensor: name, dtype: "quantized blocks (a vector must be a float tensor)")
            }
            bytes += shape.reduce(1, *) * 4
            return data
        }
        func matrix(_ name: String, _ rows: Int, _ columns: Int) throws(RuntimeError) -> Matrix {
            let found = try find(name, [rows, columns])
            let matrix: Matrix
            switch found {
            case .floats(_, let data, _): matrix = Matrix(data: data, rows: rows, columns: columns)
            case .blocks(_, let type, let blocks): matrix = Matrix(quantized: QuantizedMatrix(type: type, blocks: blocks, rows: rows, columns: columns))
            }
            bytes += matrix.byteCount
            return matrix
        }

        embedding = try matrix("model.embed_tokens.weight", config.vocabSize, config.embeddingWidth)
        var blocks: [BlockWeights] = []
        for (index, shape) in config.layerShapes.enumerated() {
            let p = "model.layers.\(index)."
            let hasAttention = shape.attentionHeads > 0, hasMLP = shape.intermediateSize > 0
            let qWidth = shape.attentionHeads * shape.headDim, kvWidth = shape.keyValueHeads * shape.headDim
            blocks.append(BlockWeights(
                shape: shape,
                inputNorm: hasAttention ? try tensor(p + "input_layernorm.weight", [shape.inputWidth]) : nil,
                q: hasAttention ? try matrix(p + "self_attn.q_proj.weight", qWidth, shape.inputWidth) : nil,
                k: hasAttention ? try matrix(p + "self_attn.k_proj.weight", kvWidth, shape.inputWidth) : nil,
                v: hasAttention ? try matrix(p + "self_attn.v_proj.weight", kvWidth, shape.inputWidth) : nil,
                o: hasAttention ? try matrix(p + "self_attn.o_proj.weight", shape.attentionOutputWidth, qWidth) : nil,
                attentionShortcut: shape.attentionShortcut
                    ? try matrix(p + "self_attn.shortcut.weight", shape.attentionOutputWidth, shape.inputWidth) : nil,
                postAttentionNorm: hasMLP ? try tensor(p + "post_attention_layernorm.weight", [shape.attentionOutputWidth]) : nil,
                gate: hasMLP ? try matrix(p + "mlp.gate_proj.weight", shape.intermediateSize, shape.attentionOutputWidth) : nil,
                up: hasMLP ? try matrix(p + "mlp.up_proj.weight", shape.intermediateSize, shape.attentionOutputWidth) : nil,
                down: hasMLP ? try matrix(p + "mlp.down_proj.weight", shape.outputWidth, shape.intermediateSize) : nil,
                mlpShortcut: shape.mlpShortcut ? try matrix(p + "mlp.shortcut.weight", shape.outputWidth, shape.attentionOutputWidth) : nil))
        }
        self.blocks = blocks
        finalNorm = try tensor("model.norm.weight", [config.finalWidth])
        if config.tieWordEmbeddings {
            guard config.finalWidth == config.embeddingWidth else {
                throw .unsupported("tied embeddings with an embedding width \(config.embeddingWidth) different from the final width \(config.finalWidth)")
            }
            head = embedding
        } else {
            head = try matrix("lm_head.weight", config.vocabSize, config.finalWidth)
        }
        if let extra = names.filter({ !used.contains($0) }).sorted().first {
            throw .unexpectedTensor(extra)
        }
        // A decode step reads every block matrix and the head, but only one embedding row.
        weightBytes = bytes - (config.tieWordEmbeddings ? 0 : embedding.byteCount)
        keepAlive = owned
    }

    public var vocabularySize: Int { config.vocabSize }

    /// The block type of a quantized checkpoint's matrices; nil for fp32 weights.
    public let quantization: GGMLType?

    /// Refuses quantized weights where every value is needed as fp32 (training, compression):
    /// quantize after those, from the fp32 variant.
    public func requireFloat(for purpose: String) throws(RuntimeError) {
        if let quantization {
            throw .unsupported("\(purpose) needs fp32 weights; this model is \(QuantizedTensors.name(of: quantization)). "
                               + "Use the fp32 variant it was quantized from (its quantization.json names it)")
        }
    }
}
