import Foundation

/// The compression ratio as every record states it: r = 1 − params(variant) / params(base),
/// over all parameters (embeddings included).
public struct CompressionRatio: Sendable, Equatable, Codable, CustomStringConvertible {
    public let value: Double

    /// A requested ratio; compression needs 0 < r < 1.
    public init(requested value: Double) throws(CompressionRatioError) {
        guard value.isFinite, value > 0, value < 1 else { throw .outOfRange(value) }
        self.value = value
    }

    /// The achieved ratio of a variant against its base.
    public init(variantParameters: Int, baseParameters: Int) {
        precondition(baseParameters > 0, "a base model has parameters")
        value = 1 - Double(variantParameters) / Double(baseParameters)
    }

    public var description: String { String(format: "%.2f%%", value * 100) }
}

public enum CompressionRatioError: Error, Equatable, CustomStringConvertible {
    case outOfRange(Double)

    public var description: String {
        switch self {
        case .outOfRange(let r): "compression ratio must be strictly between 0 and 1, found \(r)"
        }
    }
}
