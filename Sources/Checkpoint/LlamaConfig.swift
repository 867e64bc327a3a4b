import Foundation

/// The Hugging Face `config.json` of a LLaMA-family model, with the snake_case names
/// transformers writes. Optional fields take transformers' defaults; invalid combinations
/// are rejected when decoding, not when a forward pass trips over them.
public struct LlamaConfig: Codable, Sendable, Equatable {
    public var architectures: [String] = ["LlamaForCausalLM"]
    public var modelType: String = "llama"
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var headDim: Int?
    public var hiddenAct: String = "silu"
    public var maxPositionEmbeddings: Int
    public var rmsNormEps: Double
    public var ropeTheta: Double
    public var ropeScaling: RopeScaling?
    public var tieWordEmbeddings: Bool
    public var attentionBias: Bool = false
    public var mlpBias: Bool = false
    public var bosTokenID: Int?
    public var eosTokenID: Int?
    public var padTokenID: Int?
    public var torchDtype: String = "float32"
    /// Per-block shapes of a heterogeneous (compressed) model; nil for a standard uniform one.
    public var hubLayers: [LayerShape]?
    /// Where transformers finds the code of a non-standard architecture (see `PortableConfig`).
    public var autoMap: [String: String]?

    public struct RopeScaling: Codable, Sendable, Equatable {
        public var ropeType: String
        public var factor: Double?
        public var lowFreqFactor: Double?
        public var highFreqFactor: Double?
        public var originalMaxPositionEmbeddings: Int?

        public init(ropeType: String, factor: Double? = nil, lowFreqFactor: Double? = nil, highFreqFactor: Double? = nil,
                    originalMaxPositionEmbeddings: Int? = nil) {
            self.ropeType = ropeType
            self.factor = factor
            self.lowFreqFactor = lowFreqFactor
            self.highFreqFactor = highFreqFactor
            self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
        }

        enum CodingKeys: String, CodingKey {
            case ropeType = "rope_type", factor
            case lowFreqFactor = "low_freq_factor", highFreqFactor = "high_freq_factor"
            case originalMaxPositionEmbeddings = "original_max_position_embeddings"
        }
    }

    enum CodingKeys: String, CodingKey {
        case architectures, modelType = "model_type", vocabSize = "vocab_size", hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size", numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads", numKeyValueHeads = "num_key_value_heads", headDim = "head_dim"
        case hiddenAct = "hidden_act", maxPositionEmbeddings = "max_position_embeddings", rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta", ropeScaling = "rope_scaling", tieWordEmbeddings = "tie_word_embeddings"
        case attentionBias = "attention_bias", mlpBias = "mlp_bias", bosTokenID = "bos_token_id"
        case eosTokenID = "eos_token_id", padTokenID = "pad_token_id", torchDtype = "torch_dtype", hubLayers = "hub_layers"
        case autoMap = "auto_map"
    }

    public init(vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int, numAttentionHeads: Int,
                numKeyValueHeads: Int, maxPositionEmbeddings: Int, rmsNormEps: Double, ropeTheta: Double,
                tieWordEmbeddings: Bool, headDim: Int? = nil) throws(LlamaConfigError) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.tieWordEmbeddings = tieWordEmbeddings
        self.headDim = headDim
        try validate()
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures) ?? ["LlamaForCausalLM"]
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? "llama"
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        numHiddenLayers = try c.decode(Int.self, forKey: .numHiddenLayers)
        numAttentionHeads = try c.decode(Int.self, forKey: .numAttentionHeads)
        numKeyValueHeads = try c.decodeIfPresent(Int.self, forKey: .numKeyValueHeads) ?? numAttentionHeads
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim)
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? "silu"
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 2048
        rmsNormEps = try c.decodeIfPresent(Double.self, forKey: .rmsNormEps) ?? 1e-6
        ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? 10000
        ropeScaling = try c.decodeIfPresent(RopeScaling.self, forKey: .ropeScaling)
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? false
        mlpBias = try c.decodeIfPresent(Bool.self, forKey: .mlpBias) ?? false
        bosTokenID = try c.decodeIfPresent(Int.self, forKey: .bosTokenID)
        // transformers allows a list of end-of-sequence ids; the first is the one generation stops on by default.
        if let single = try? c.decodeIfPresent(Int.self, forKey: .eosTokenID) {
            eosTokenID = single
        } else {
            eosTokenID = try c.decodeIfPresent([Int].self, forKey: .eosTokenID)?.first
        }
        padTokenID = try c.decodeIfPresent(Int.self, forKey: .padTokenID)
        torchDtype = try c.decodeIfPresent(String.self, forKey: .torchDtype) ?? "float32"
        hubLayers = try c.decodeIfPresent([LayerShape].self, forKey: .hubLayers)
        autoMap = try c.decodeIfPresent([String: String].self, forKey: .autoMap)
        try validate()
    }

    /// Size of one attention head.
    public var resolvedHeadDim: Int { headDim ?? hiddenSize / numAttentionHeads }

    public func validate() throws(LlamaConfigError) {
        for (field, value) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
                               ("num_hidden_layers", numHiddenLayers), ("num_attention_heads", numAttentionHeads),
                               ("num_key_value_heads", numKeyValueHeads)] where value <= 0 {
            throw .invalid(field: field, reason: "must be positive, found \(value)")
        }
        guard headDim != nil || hiddenSize % numAttentionHeads == 0 else {
            throw .invalid(field: "hidden_size", reason: "\(hiddenSize) is not divisible by num_attention_heads \(numAttentionHeads)")
        }
        guard numAttentionHeads % numKeyValueHeads == 0 else {
            throw .invalid(field: "num_key_value_heads", reason: "\(numKeyValueHeads) does not divide num_attention_heads \(numAttentionHeads)")
        }
        guard hiddenAct == "silu" else { throw .invalid(field: "hidden_act", reason: "only 'silu' is supported, found '\(hiddenAct)'") }
        guard rmsNormEps > 0, ropeTheta > 0 else { throw .invalid(field: "rms_norm_eps/rope_theta", reason: "must be positive") }
        guard resolvedHeadDim % 2 == 0 else { throw .invalid(field: "head_dim", reason: "rotary embeddings need an even head size, found \(resolvedHeadDim)") }
        try validateLayers()
    }

    public static func load(from url: URL) throws -> LlamaConfig {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw CheckpointIOError.cannotOpen(path: url.path, reason: "no such file")
        }
        do {
            return try JSONDecoder().decode(LlamaConfig.self, from: data)
        } catch let error as LlamaConfigError {
            throw LlamaConfigError.inFile(path: url.path, error)
        } catch let error as DecodingError {
            throw LlamaConfigError.undecodable(path: url.path, reason: Self.describe(error))
        }
    }

    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, _): "missing field '\(key.stringValue)'"
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            "field '\(context.codingPath.map(\.stringValue).joined(separator: "."))' should be \(type)"
        case .dataCorrupted(let context): "not valid JSON: \(context.debugDescription)"
        @unknown default: "\(error)"
        }
    }
}

public indirect enum LlamaConfigError: Error, Equatable, CustomStringConvertible {
    case invalid(field: String, reason: String)
    case undecodable(path: String, reason: String)
    case inFile(path: String, LlamaConfigError)

    public var description: String {
        switch self {
        case .invalid(let field, let reason): "config field '\(field)': \(reason)"
        case .undecodable(let path, let reason): "\(path): \(reason)"
        case .inFile(let path, let error): "\(path): \(error)"
        }
    }
}
