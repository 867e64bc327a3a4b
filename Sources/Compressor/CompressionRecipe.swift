import Foundation
import HubCore

/// How a variant was made: everything needed to audit it or make it again. It is what a
/// lineage edge carries; its JSON form is `schemas/recipe.schema.json`.
public struct CompressionRecipe: Codable, Sendable, Equatable {
    public struct Calibration: Codable, Sendable, Equatable {
        public let source: String
        public let sha256: SHA256Digest
        public let tokens: Int
    }

    public var schemaVersion = 1
    public let method: String
    public let requestedRatio: Double
    /// 1 − params(variant) / params(base), all parameters.
    public let achievedRatio: Double
    /// The same over non-embedding parameters.
    public let achievedNonEmbeddingRatio: Double
    public let baseParameters: Int
    public let variantParameters: Int
    public let baseCheckpointSHA256: SHA256Digest
    public let calibration: Calibration?
    public let seed: UInt64
    public let codeVersion: String
    public let createdAt: String
    public let details: JSONValue

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", method, requestedRatio = "requested_ratio", achievedRatio = "achieved_ratio"
        case achievedNonEmbeddingRatio = "achieved_non_embedding_ratio", baseParameters = "base_parameters"
        case variantParameters = "variant_parameters", baseCheckpointSHA256 = "base_checkpoint_sha256", calibration, seed
        case codeVersion = "code_version", createdAt = "created_at", details
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(schemaVersion, forKey: .schemaVersion)
        try c.encode(method, forKey: .method)
        try c.encode(requestedRatio, forKey: .requestedRatio)
        try c.encode(achievedRatio, forKey: .achievedRatio)
        try c.encode(achievedNonEmbeddingRatio, forKey: .achievedNonEmbeddingRatio)
        try c.encode(baseParameters, forKey: .baseParameters)
        try c.encode(variantParameters, forKey: .variantParameters)
        try c.encode(baseCheckpointSHA256, forKey: .baseCheckpointSHA256)
        try c.encode(calibration, forKey: .calibration)
        try c.encode(seed, forKey: .seed)
        try c.encode(codeVersion, forKey: .codeVersion)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(details, forKey: .details)
    }
}
