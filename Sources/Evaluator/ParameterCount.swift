import Checkpoint

/// Parameters of a checkpoint, split the way the compression laws need: embedding tables
/// (input and, when untied, output) apart from the rest.
public struct ParameterCount: Sendable, Equatable, Codable {
    public let total: Int
    public let embedding: Int
    public var nonEmbedding: Int { total - embedding }

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
