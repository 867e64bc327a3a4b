import Checkpoint
import Foundation
import HubTestSupport
import Testing
@testable import Transformer

/// The runtime against transformers (fp32, same dequantized weights) on five real prompts.
@Suite("Runtime parity with transformers", .serialized)
struct ParityTests {
    struct Case {
        let name: String
        let ids: [Int]
        let maxAbsLogit: Double
        let argmax: [Int]
        let maxLogit: [Double]
        let logSumExp: [Double]
        let sampledIDs: [Int]
        let sampledLogits: [[Double]]
        let lastTopIDs: [Int]
        let lastTopLogits: [Double]
        let greedy: [Int]
    }

    static func cases() throws -> [Case] {
        let root = try #require(try Assets.fixtureJSON("smollm2-135m-logits.json") as? [String: Any])
        return try #require(root["cases"] as? [[String: Any]]).map { c in
            Case(name: c["name"] as! String, ids: c["ids"] as! [Int], maxAbsLogit: (c["max_abs_logit"] as! NSNumber).doubleValue,
                 argmax: c["argmax"] as! [Int], maxLogit: (c["max_logit"] as! [NSNumber]).map(\.doubleValue),
                 logSumExp: (c["logsumexp"] as! [NSNumber]).map(\.doubleValue), sampledIDs: c["sampled_ids"] as! [Int],
                 sampledLogits: (c["sampled_logits"] as! [[NSNumber]]).map { $0.map(\.doubleValue) },
                 lastTopIDs: c["last_top_ids"] as! [Int], lastTopLogits: (c["last_top_logits"] as! [NSNumber]).map(\.doubleValue),
                 greedy: c["greedy_64"] as! [Int])
        }
    }

    static let model: Result<LlamaModel, Error> = Result { try LlamaModel(directory: ConvertedModel.directory()) }

    @Test("logits match within 1e-3 × max|logit| with the same argmax at every position")
    func logits() throws {
        let model = try Self.model.get()
        let cases = try Self.cases()
        #expect(cases.count == 5)
        #expect(cases.map(\.ids.count).max() == 512)
        for c in cases {
            let cache = model.makeCache(capacity: c.ids.count)
            let hidden = try model.forward(c.ids, cache: cache, outputRows: c.ids.count)
            let logits = model.logits(hidden, rows: c.ids.count)
            let vocabulary = model.config.vocabSize
            let tolerance = 1e-3 * c.maxAbsLogit
            var worst = 0.0
            for position in 0 ..< c.ids.count {
                let row = logits.pointer + position * vocabulary
                #expect(Sampler.argmax(row, count: vocabulary) == c.argmax[position], "\(c.name) position \(position)")
                worst = max(worst, abs(Double(row[c.argmax[position]]) - c.maxLogit[position]))
                worst = max(worst, abs(Kernels.logSumExp(row, count: vocabulary) - c.logSumExp[position]))
                for (id, expected) in zip(c.sampledIDs, c.sampledLogits[position]) {
                    worst = max(worst, abs(Double(row[id]) - expected))
                }
            }
            let last = logits.pointer + (c.ids.count - 1) * vocabulary
            for (id, expected) in zip(c.lastTopIDs, c.lastTopLogits) { worst = max(worst, abs(Double(last[id]) - expected)) }
            #expect(worst <= tolerance, "\(c.name): max |Δlogit| \(worst) > \(tolerance)")
        }
    }

    @Test("64 greedy tokens are identical to transformers' on every prompt")
    func greedy() throws {
        let model = try Self.model.get()
        for c in try Self.cases() {
            let result = try model.generate(prompt: c.ids, options: GenerationOptions(maxNewTokens: 64))
            #expect(result.tokens == c.greedy, "\(c.name)")
        }
    }

    @Test("batched scoring gives the same log-probabilities as one sequence at a time")
    func scoring() throws {
        let model = try Self.model.get()
        let cases = try Self.cases()
        let sequences = cases.map { Array($0.ids.prefix(80)) }
        let together = try SequenceScorer(model: model, tokensPerBatch: 4096).tokenLogProbabilities(sequences)
        let apart = try SequenceScorer(model: model, tokensPerBatch: 1).tokenLogProbabilities(sequences)
        for (a, b) in zip(together, apart) {
            #expect(a.count == b.count)
            for (x, y) in zip(a, b) { #expect(abs(x - y) < 1e-3) }
        }
        // And log p equals logit - logsumexp from the reference, at the first positions.
        let first = cases[2]
        let reference = zip(first.ids.dropFirst(), 0...).prefix(16).map { token, position -> Double in
            if let index = first.sampledIDs.firstIndex(of: token) { return first.sampledLogits[position][index] - first.logSumExp[position] }
            if first.argmax[position] == token { return first.maxLogit[position] - first.logSumExp[position] }
            return .nan
        }
        for (value, expected) in zip(together[2], reference) where !expected.isNaN {
            #expect(abs(value - expected) < 1e-2)
        }
    }
}
