/// Keys and values of every attention layer for the positions processed so far, so that a
/// decode step attends to the past without recomputing it. Rows are positions; a layer's
/// row holds all its KV heads side by side (`keyValueHeads × headDim`).
public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    public private(set) var length = 0
    let keys: [FloatBuffer?]
    let values: [FloatBuffer?]
    let rowWidths: [Int]

    public init(weights: ModelWeights, capacity: Int) {
        self.capacity = capacity
        rowWidths = weights.blocks.map { $0.shape.attentionHeads > 0 ? $0.shape.keyValueHeads * $0.shape.headDim : 0 }
        keys = rowWidths.map { $0 > 0 ? FloatBuffer(count: $0 * capacity, zeroed: false) : nil }
        values = rowWidths.map { $0 > 0 ? FloatBuffer(count: $0 * capacity, zeroed: false) : nil }
    }

    public var byteCount: Int { rowWidths.reduce(0, +) * capacity * 2 * 4 }

    func advance(by count: Int) { length += count }

    public func reset() { length = 0 }

    /// Forgets every position from `length` on, so that another continuation of the same
    /// prefix can be run without recomputing the prefix.
    public func truncate(to length: Int) {
        precondition(length >= 0 && length <= self.length, "cannot truncate a cache of \(self.length) positions to \(length)")
        self.length = length
    }
}
