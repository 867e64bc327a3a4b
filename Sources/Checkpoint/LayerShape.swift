/// The shape of one decoder block. Compressed models are heterogeneous: a block may have its
/// own FFN width, its own number of heads and KV heads (none at all: the sublayer is gone), and
/// the residual stream may change width inside it — slicing methods project the residual with
/// a shortcut matrix where that happens.
///
/// A standard LLaMA config implies uniform shapes; a compressed one lists them under the
/// `hub_layers` extension key of `config.json` (documented in `schemas/config-extension.md`).
public struct LayerShape: Codable, Sendable, Equatable {
    /// Residual width entering the block.
    public var inputWidth: Int
    /// 0 when the block has no attention.
    public var attentionHeads: Int
    public var keyValueHeads: Int
    public var headDim: Int
    /// Residual width after the attention sublayer.
    public var attentionOutputWidth: Int
    /// Whether `self_attn.shortcut.weight` [attentionOutputWidth, inputWidth] maps the residual.
    public var attentionShortcut: Bool
    /// 0 when the block has no MLP.
    public var intermediateSize: Int
    /// Residual width after the MLP sublayer.
    public var outputWidth: Int
    /// Whether `mlp.shortcut.weight` [outputWidth, attentionOutputWidth] maps the residual.
    public var mlpShortcut: Bool
    /// The block's index in the base model it was cut from (lineage; blocks may be dropped).
    public var sourceLayer: Int?

    public init(inputWidth: Int, attentionHeads: Int, keyValueHeads: Int, headDim: Int, attentionOutputWidth: Int,
                attentionShortcut: Bool = false, intermediateSize: Int, outputWidth: Int, mlpShortcut: Bool = false,
                sourceLayer: Int? = nil) {
        self.inputWidth = inputWidth
        self.attentionHeads = attentionHeads
        self.keyValueHeads = keyValueHeads
        self.headDim = headDim
        self.attentionOutputWidth = attentionOutputWidth
        self.attentionShortcut = attentionShortcut
        self.intermediateSize = intermediateSize
        self.outputWidth = outputWidth
        self.mlpShortcut = mlpShortcut
        self.sourceLayer = sourceLayer
    }

    enum CodingKeys: String, CodingKey {
        case inputWidth = "input_width", attentionHeads = "attention_heads", keyValueHeads = "key_value_heads"
        case headDim = "head_dim", attentionOutputWidth = "attention_output_width", attentionShortcut = "attention_shortcut"
        case intermediateSize = "intermediate_size", outputWidth = "output_width", mlpShortcut = "mlp_shortcut"
        case sourceLayer = "source_layer"
    }

    func validate(index: Int) throws(LlamaConfigError) {
        let field = "hub_layers[\(index)]"
        guard inputWidth > 0, attentionOutputWidth > 0, outputWidth > 0 else {
            throw .invalid(field: field, reason: "residual widths must be positive")
        }
        guard attentionHeads >= 0, keyValueHeads >= 0, intermediateSize >= 0, headDim > 0, headDim % 2 == 0 else {
            throw .invalid(field: field, reason: "head counts and sizes must be non-negative, head_dim positive and even")
        }
        if attentionHeads > 0 {
            guard keyValueHeads > 0, attentionHeads % keyValueHeads == 0 else {
                throw .invalid(field: field, reason: "key_value_heads \(keyValueHeads) must divide attention_heads \(attentionHeads)")
            }
        }
        guard attentionShortcut || attentionOutputWidth == inputWidth else {
            throw .invalid(field: field, reason: "the residual changes width in attention (\(inputWidth) → \(attentionOutputWidth)) without a shortcut")
        }
        guard mlpShortcut || outputWidth == attentionOutputWidth else {
            throw .invalid(field: field, reason: "the residual changes width in the MLP (\(attentionOutputWidth) → \(outputWidth)) without a shortcut")
        }
    }
}

extension LlamaConfig {
    /// Every block's shape: the `hub_layers` extension if present, else uniform from the config.
    public var layerShapes: [LayerShape] {
        hubLayers ?? (0 ..< numHiddenLayers).map { index in
            LayerShape(inputWidth: hiddenSize, attentionHeads: numAttentionHeads, keyValueHeads: numKeyValueHeads,
                       headDim: resolvedHeadDim, attentionOutputWidth: hiddenSize, intermediateSize: intermediateSize,
                       outputWidth: hiddenSize, sourceLayer: index)
        }
    }

    /// Width of the embedding rows (the residual entering the first block).
    public var embeddingWidth: Int { hubLayers?.first?.inputWidth ?? hiddenSize }
    /// Width of the residual leaving the last block (final norm and LM head input).
    public var finalWidth: Int { hubLayers?.last?.outputWidth ?? hiddenSize }

    func validateLayers() throws(LlamaConfigError) {
        guard let layers = hubLayers else { return }
        guard layers.count == numHiddenLayers else {
            throw .invalid(field: "hub_layers", reason: "lists \(layers.count) blocks, num_hidden_layers is \(numHiddenLayers)")
        }
        for (index, layer) in layers.enumerated() {
            try layer.validate(index: index)
            if index > 0, layers[index - 1].outputWidth != layer.inputWidth {
                throw .invalid(field: "hub_layers[\(index)]", reason: "input width \(layer.inputWidth) does not match the previous block's output \(layers[index - 1].outputWidth)")
            }
        }
    }
}
