import Checkpoint
import Foundation
import HubCore

/// A model held as plain fp32 arrays so that compression can cut and rewrite it, with the
/// per-block shapes kept in step with every cut.
public struct EditableCheckpoint: Sendable {
    public struct Tensor: Sendable {
        public var shape: [Int]
        public var values: [Float]

        public var rows: Int { shape[0] }
        public var columns: Int { shape.count > 1 ? shape[1] : 1 }

        /// The rows at `indices`, in that order.
        func rows(_ indices: [Int]) -> Tensor {
            var out: [Float] = []
            out.reserveCapacity(indices.count * columns)
            for r in indices { out += values[r * columns ..< (r + 1) * columns] }
            return Tensor(shape: [indices.count] + shape.dropFirst(), values: out)
        }

        /// The columns at `indices` of a matrix, in that order.
        func columns(_ indices: [Int]) -> Tensor {
            var out = [Float](repeating: 0, count: rows * indices.count)
            for r in 0 ..< rows {
                for (j, c) in indices.enumerated() { out[r * indices.count + j] = values[r * columns + c] }
            }
            return Tensor(shape: [rows, indices.count], values: out)
        }

        func rowNorm(_ r: Int) -> Double {
            var sum = 0.0
            for c in 0 ..< columns { let v = Double(values[r * columns + c]); sum += v * v }
            return sum.squareRoot()
        }

        func columnNorm(_ c: Int) -> Double {
            var sum = 0.0
            for r in 0 ..< rows { let v = Double(values[r * columns + c]); sum += v * v }
            return sum.squareRoot()
        }
    }

    public var config: LlamaConfig
    public var layers: [LayerShape]
    public var tensors: [String: Tensor]
    /// sha256 of the base `model.safetensors`, for lineage.
    public let baseDigest: SHA256Digest
    /// Files copied unchanged into the output (tokenizer, generation config), by name.
    let companions: [String: URL]

    public init(directory: URL) throws {
        let names = ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]
        var companions: [String: URL] = [:]
        for name in names where FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path) {
            companions[name] = directory.appendingPathComponent(name)
        }
        try self.init(config: directory.appendingPathComponent("config.json"), weights: directory.appendingPathComponent("model.safetensors"),
                      companions: companions)
    }

    public init(config configURL: URL, weights weightsURL: URL, companions: [String: URL]) throws {
        config = try LlamaConfig.load(from: configURL)
        guard config.modelType == "llama" || config.modelType == PortableConfig.modelType else {
            throw CompressionError.unsupportedModel("architecture '\(config.modelType)' (\(configURL.path)); supported: llama")
        }
        let file = try SafetensorsFile(path: weightsURL.path)
        var tensors: [String: Tensor] = [:]
        for entry in file.entries { tensors[entry.name] = Tensor(shape: entry.shape, values: try file.floats(entry.name)) }
        self.tensors = tensors
        layers = config.layerShapes
        baseDigest = try SHA256Digest.ofFile(at: weightsURL)
        self.companions = companions
    }

    func tensor(_ name: String) throws -> Tensor {
        guard let tensor = tensors[name] else { throw CompressionError.missingTensor(name) }
        return tensor
    }

    /// Parameters of the model as it stands (a tied head is the embedding, counted once).
    public var parameterCount: Int { tensors.values.reduce(0) { $0 + $1.values.count } }

    public var embeddingParameterCount: Int {
        (tensors["model.embed_tokens.weight"]?.values.count ?? 0) + (tensors["lm_head.weight"]?.values.count ?? 0)
    }

    static func prefix(_ layer: Int) -> String { "model.layers.\(layer)." }

    // MARK: Surgery

    /// Keeps only the SwiGLU channels `kept` of block `layer` (all of them removed: no MLP).
    public mutating func keepMLPChannels(_ kept: [Int], layer: Int) throws {
        let p = Self.prefix(layer)
        if kept.isEmpty {
            for name in ["mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight", "post_attention_layernorm.weight"] {
                tensors[p + name] = nil
            }
        } else {
            tensors[p + "mlp.gate_proj.weight"] = try tensor(p + "mlp.gate_proj.weight").rows(kept)
            tensors[p + "mlp.up_proj.weight"] = try tensor(p + "mlp.up_proj.weight").rows(kept)
            tensors[p + "mlp.down_proj.weight"] = try tensor(p + "mlp.down_proj.weight").columns(kept)
        }
        layers[layer].intermediateSize = kept.count
    }

    /// Keeps only the KV groups `kept` of block `layer`, each with the query heads that share
    /// it (all removed: no attention).
    public mutating func keepKeyValueGroups(_ kept: [Int], layer: Int) throws {
        let p = Self.prefix(layer)
        let shape = layers[layer]
        let group = shape.attentionHeads / shape.keyValueHeads, d = shape.headDim
        if kept.isEmpty {
            for name in ["self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight", "input_layernorm.weight"] {
                tensors[p + name] = nil
            }
            layers[layer].attentionHeads = 0
            layers[layer].keyValueHeads = 0
            return
        }
        let kvRows = kept.flatMap { g in (g * d ..< (g + 1) * d).map { $0 } }
        let qRows = kept.flatMap { g in (g * group * d ..< (g + 1) * group * d).map { $0 } }
        tensors[p + "self_attn.q_proj.weight"] = try tensor(p + "self_attn.q_proj.weight").rows(qRows)
        tensors[p + "self_attn.k_proj.weight"] = try tensor(p + "self_attn.k_proj.weight").rows(kvRows)
        tensors[p + "self_attn.v_proj.weight"] = try tensor(p + "self_attn.v_proj.weight").rows(kvRows)
        tensors[p + "self_attn.o_proj.weight"] = try tensor(p + "self_attn.o_proj.weight").columns(qRows)
        layers[layer].attentionHeads = kept.count * group
        layers[layer].keyValueHeads = kept.count
    }

    /// Removes whole blocks; the rest are renumbered, each keeping its `source_layer`.
    public mutating func dropBlocks(_ dropped: Set<Int>) throws {
        for width in dropped.map({ (layers[$0].inputWidth, layers[$0].outputWidth) }) where width.0 != width.1 {
            throw CompressionError.unsupportedModel("a block that changes the residual width cannot be dropped")
        }
        var renamed: [String: Tensor] = [:]
        var newLayers: [LayerShape] = []
        for (name, tensor) in tensors where !name.hasPrefix("model.layers.") { renamed[name] = tensor }
        for (old, shape) in layers.enumerated() where !dropped.contains(old) {
            let oldPrefix = Self.prefix(old), newPrefix = Self.prefix(newLayers.count)
            for (name, tensor) in tensors where name.hasPrefix(oldPrefix) {
                renamed[newPrefix + name.dropFirst(oldPrefix.count)] = tensor
            }
            newLayers.append(shape)
        }
        tensors = renamed
        layers = newLayers
    }

    // MARK: Output

    /// The config of the model as it stands: the standard fields when every block is alike
    /// (so transformers loads it), the `hub_layers` extension otherwise.
    public var outputConfig: LlamaConfig {
        var out = config
        out.numHiddenLayers = layers.count
        let first = layers.first
        let width = first?.inputWidth
        let uniform = layers.allSatisfy {
            $0.attentionHeads == first?.attentionHeads && $0.keyValueHeads == first?.keyValueHeads && $0.headDim == first?.headDim
                && $0.intermediateSize == first?.intermediateSize && $0.inputWidth == width
                && $0.outputWidth == width && $0.attentionOutputWidth == width
                && !$0.attentionShortcut && !$0.mlpShortcut && $0.attentionHeads > 0 && $0.intermediateSize > 0
        }
        if uniform, let first {
            out.hiddenSize = first.inputWidth
            out.intermediateSize = first.intermediateSize
            out.numAttentionHeads = first.attentionHeads
            out.numKeyValueHeads = first.keyValueHeads
            out.headDim = first.headDim * first.attentionHeads == first.inputWidth ? nil : first.headDim
            out.hubLayers = nil
        } else {
            out.hubLayers = layers
        }
        return out
    }

    /// Writes model.safetensors, config.json, the base's tokenizer and generation files and
    /// recipe.json into `destination`, which appears whole or not at all.
    public func write(to destination: URL, recipe: Data) throws {
        try ModelDirectory.write(config: outputConfig, tensors: tensors.mapValues { ($0.shape, $0.values) }, companions: companions,
                                 records: ["recipe.json": recipe], to: destination)
    }
}
