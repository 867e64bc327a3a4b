import Foundation

/// Log-probabilities of token sequences under the model, many sequences per forward pass:
/// what test loss and multiple-choice accuracy are computed from.
public struct SequenceScorer: Sendable {
    public let model: LlamaModel
    /// Tokens packed into one forward pass (bounds activation memory).
    public var tokensPerBatch: Int
    /// Rows of logits materialised at once ([rows, vocabulary] floats).
    public var logitRowsPerChunk: Int

    public init(model: LlamaModel, tokensPerBatch: Int = 2048, logitRowsPerChunk: Int = 128) {
        self.model = model
        self.tokensPerBatch = tokensPerBatch
        self.logitRowsPerChunk = logitRowsPerChunk
    }

    /// For each sequence, log p(token[i] | token[..<i]) for i in 1..<count (count − 1 values).
    public func tokenLogProbabilities(_ sequences: [[Int]]) throws -> [[Double]] {
        var results = [[Double]](repeating: [], count: sequences.count)
        var batch: [Int] = []
        var batchTokens = 0
        func flush() throws {
            guard !batch.isEmpty else { return }
            let members = batch.map { sequences[$0] }
            let hidden = try model.forwardPacked(members)
            var rowStart = 0
            for (member, sequence) in zip(batch, members) {
                results[member] = logProbabilities(hidden, firstRow: rowStart, sequence: sequence)
                rowStart += sequence.count
            }
            batch.removeAll()
            batchTokens = 0
        }
        for (index, sequence) in sequences.enumerated() {
            guard !sequence.isEmpty else { throw RuntimeError.emptyInput }
            if batchTokens + sequence.count > tokensPerBatch { try flush() }
            batch.append(index)
            batchTokens += sequence.count
        }
        try flush()
        return results
    }

    /// For each sequence, the log-probability of every vocabulary token as its continuation
    /// (log-softmax of the last position's logits).
    public func nextTokenLogProbabilities(_ sequences: [[Int]]) throws -> [[Float]] {
        var results: [[Float]] = []
        results.reserveCapacity(sequences.count)
        var start = 0
        while start < sequences.count {
            // Pack whole sequences up to the token budget (at least one per pass).
            var end = start + 1, tokens = sequences[start].count
            while end < sequences.count, tokens + sequences[end].count <= tokensPerBatch { tokens += sequences[end].count; end += 1 }
            let members = Array(sequences[start ..< end])
            let hidden = try model.forwardPacked(members)
            let width = model.config.finalWidth, head = model.weights.head
            let row = FloatBuffer(count: head.rows, zeroed: false)
            var lastRow = -1
            for sequence in members {
                lastRow += sequence.count
                Kernels.linear(hidden.pointer + lastRow * width, rows: 1, ldx: width, head, row.pointer, ldy: head.rows)
                let normalizer = Float(Kernels.logSumExp(row.pointer, count: head.rows))
                results.append((0 ..< head.rows).map { row.pointer[$0] - normalizer })
            }
            start = end
        }
        return results
    }

    /// log p(continuation | context) for each continuation, summed over its tokens. The
    /// context runs once; each continuation then runs from the KV cache, which is cut back to
    /// the context before the next.
    public func continuationLogLikelihoods(context: [Int], continuations: [[Int]]) throws -> [[Double]] {
        guard !context.isEmpty, continuations.allSatisfy({ !$0.isEmpty }) else { throw RuntimeError.emptyInput }
        let longest = continuations.map(\.count).max() ?? 0
        let cache = model.makeCache(capacity: context.count + longest)
        let head = model.weights.head
        let width = model.config.finalWidth
        let first = model.logits(try model.forward(context, cache: cache, outputRows: 1), rows: 1)
        let firstNormalizer = Kernels.logSumExp(first.pointer, count: head.rows)
        var results: [[Double]] = []
        for continuation in continuations {
            var values = [Double(first.pointer[continuation[0]]) - firstNormalizer]
            if continuation.count > 1 {
                let rows = continuation.count - 1
                let hidden = try model.forward(Array(continuation.dropLast()), cache: cache, outputRows: rows)
                let logits = FloatBuffer(count: rows * head.rows, zeroed: false)
                Kernels.linear(hidden.pointer, rows: rows, ldx: width, head, logits.pointer, ldy: head.rows)
                for r in 0 ..< rows {
                    let line = logits.pointer + r * head.rows
                    values.append(Double(line[continuation[r + 1]]) - Kernels.logSumExp(line, count: head.rows))
                }
                cache.truncate(to: context.count)
            }
            results.append(values)
        }
        return results
    }

    private func logProbabilities(_ hidden: FloatBuffer, firstRow: Int, sequence: [Int]) -> [Double] {
        let width = model.config.finalWidth
        let head = model.weights.head
        var values: [Double] = []
        values.reserveCapacity(sequence.count - 1)
        var row = 0
        let predicting = sequence.count - 1
        let logits = FloatBuffer(count: min(logitRowsPerChunk, max(predicting, 1)) * head.rows, zeroed: false)
        while row < predicting {
            let rows = min(logitRowsPerChunk, predicting - row)
            Kernels.linear(hidden.pointer + (firstRow + row) * width, rows: rows, ldx: width, head, logits.pointer, ldy: head.rows)
            for r in 0 ..< rows {
                let line = logits.pointer + r * head.rows
                let target = sequence[row + r + 1]
                values.append(Double(line[target]) - Kernels.logSumExp(line, count: head.rows))
            }
            row += rows
        }
        return values
    }
}
