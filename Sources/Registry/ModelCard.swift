import Evaluator
import Foundation
import HubCore

/// What the registry says about one model revision: identity, shape, size, files, origin
/// and lineage. Its JSON form is `schemas/model-card.schema.json`.
public struct ModelCard: Sendable, Codable, Equatable {
    public struct Shape: Sendable, Codable, Equatable {
        public let layers: Int
        public let hiddenSize: Int
        public let intermediateSize: Int
        public let attentionHeads: Int
        public let keyValueHeads: Int
        public let vocabularySize: Int
        public let contextLength: Int
        public let tiedEmbeddings: Bool
        /// Blocks differ in shape (the `hub_layers` extension); the sizes above are then the largest.
        public let heterogeneous: Bool

        enum CodingKeys: String, CodingKey {
            case layers, hiddenSize = "hidden_size", intermediateSize = "intermediate_size", attentionHeads = "attention_heads"
            case keyValueHeads = "key_value_heads", vocabularySize = "vocabulary_size", contextLength = "context_length"
            case tiedEmbeddings = "tied_embeddings", heterogeneous
        }
    }

    /// One recorded evaluation, summarized (the full record stays in the registry).
    public struct MetricsSummary: Sendable, Codable, Equatable {
        public let suite: String
        public let createdAt: String
        public let cpuModel: String
        public let blasThreads: Int
        public let crossEntropy: Double?

        enum CodingKeys: String, CodingKey {
            case suite, createdAt = "created_at", cpuModel = "cpu_model", blasThreads = "blas_threads", crossEntropy = "cross_entropy"
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(suite, forKey: .suite)
            try c.encode(createdAt, forKey: .createdAt)
            try c.encode(cpuModel, forKey: .cpuModel)
            try c.encode(blasThreads, forKey: .blasThreads)
            try c.encode(crossEntropy, forKey: .crossEntropy)
        }
    }

    public struct Lineage: Sendable, Codable, Equatable {
        public let parentRevision: String
        public let recipe: JSONValue

        enum CodingKeys: String, CodingKey { case parentRevision = "parent_revision", recipe }
    }

    public let repository: String
    public let revision: String
    public let parentRevision: String?
    public let message: String
    public let author: String
    public let createdAt: String
    public let kind: VariantRecord.Kind
    public let architecture: String
    public let parameters: ParameterCount
    public let bytes: Int
    public let shape: Shape?
    public let files: [RevisionFile]
    public let source: JSONValue?
    public let lineage: Lineage?
    public let metrics: [MetricsSummary]

    enum CodingKeys: String, CodingKey {
        case repository, revision, parentRevision = "parent_revision", message, author, createdAt = "created_at", kind
        case architecture, parameters, bytes, shape, files, source, lineage, metrics
    }

    /// Absent values are written as `null`, never omitted, so every card has the same keys.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(repository, forKey: .repository)
        try c.encode(revision, forKey: .revision)
        try c.encode(parentRevision, forKey: .parentRevision)
        try c.encode(message, forKey: .message)
        try c.encode(author, forKey: .author)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(kind, forKey: .kind)
        try c.encode(architecture, forKey: .architecture)
        try c.encode(parameters, forKey: .parameters)
        try c.encode(bytes, forKey: .bytes)
        try c.encode(shape, forKey: .shape)
        try c.encode(files, forKey: .files)
        try c.encode(source, forKey: .source)
        try c.encode(lineage, forKey: .lineage)
        try c.encode(metrics, forKey: .metrics)
    }

    init(revision: Revision, variant: VariantRecord, files: [RevisionFile], lineage: LineageEdge?, metrics: [StoredMetrics]) throws {
        repository = revision.repository.description
        self.revision = revision.id
        parentRevision = revision.parentID
        message = revision.message
        author = revision.author
        createdAt = revision.createdAt
        kind = variant.kind
        architecture = variant.architecture
        parameters = ParameterCount(total: variant.parameters, embedding: variant.embeddingParameters)
        bytes = variant.bytes
        self.files = files
        source = try variant.sourceJSON.map { try JSONValue(json: $0) }
        self.lineage = try lineage.map { Lineage(parentRevision: $0.parentRevisionID, recipe: try JSONValue(json: $0.recipeJSON)) }
        self.metrics = try metrics.map { stored in
            let record = try JSONValue(json: stored.recordJSON)
            var loss: Double?
            if case .number(let value)? = record["loss"]?["cross_entropy"] { loss = value }
            return MetricsSummary(suite: stored.suite, createdAt: stored.createdAt, cpuModel: stored.cpuModel,
                                  blasThreads: stored.blasThreads, crossEntropy: loss)
        }
        if let config = try? JSONDecoder().decode(ConfigShape.self, from: Data(variant.configJSON.utf8)) {
            let blocks = config.hub_layers ?? []
            shape = Shape(layers: config.num_hidden_layers,
                          hiddenSize: blocks.map(\.input_width).max() ?? config.hidden_size,
                          intermediateSize: blocks.map(\.intermediate_size).max() ?? config.intermediate_size,
                          attentionHeads: blocks.map(\.attention_heads).max() ?? config.num_attention_heads,
                          keyValueHeads: blocks.map(\.key_value_heads).max() ?? config.num_key_value_heads ?? config.num_attention_heads,
                          vocabularySize: config.vocab_size, contextLength: config.max_position_embeddings ?? 0,
                          tiedEmbeddings: config.tie_word_embeddings ?? false, heterogeneous: !blocks.isEmpty)
        } else {
            shape = nil
        }
    }

    /// The fields of config.json a card shows; decoded leniently so that cards of any model render.
    private struct ConfigShape: Decodable {
        let num_hidden_layers: Int
        let hidden_size: Int
        let intermediate_size: Int
        let num_attention_heads: Int
        let num_key_value_heads: Int?
        let vocab_size: Int
        let max_position_embeddings: Int?
        let tie_word_embeddings: Bool?
        let hub_layers: [Block]?

        struct Block: Decodable {
            let input_width: Int
            let intermediate_size: Int
            let attention_heads: Int
            let key_value_heads: Int
        }
    }
}

extension RevisionFile {
    enum CodingKeys: String, CodingKey { case path, sha256, size }
}
