import Checkpoint

/// Parameters of a checkpoint, split the way the compression laws need: embedding tables
/// (input and, when untied, output) apart from the rest. Encoded as
/// `{total, embedding, non_embedding}` in cards and metrics records.
public struct ParameterCount: Sendable, Equatable, Codable {
    public let total: Int
    public let embedding: Int
    public var nonEmbedding: Int { total - embedding }

    enum CodingKeys: String, CodingKey { case total, embedding, nonEmbedding = "non_embedding" }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(total: try c.decode(Int.self, forKey: .total), embedding: try c.decode(Int.self, forKey: .embedding))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(total, forKey: .total)
        try c.encode(embedding, forKey: .embedding)
        try c.encode(nonEmbedding, forKey: .nonEmbedding)
    }

    public init(total: Int, embedding: Int) {
        self.total = total
        self.embedding = embedding
    }

    /// Counts parameters from tensor names (Hugging Face LLaMA naming) and shapes.
    public init(tensors: some Sequence<(name: String, shape: [Int])>) {
        var total = 0, embedding = 0
        for tensor in tensors {
            let count = tensor.shape.reduce(1, *)
            total += count
            if tensor.name.hasSuffix("embed_tokens.weight") || tensor.name == "lm_head.weight" { embedding += count }
        }
        self.init(total: total, embedding: embedding)
    }
}
