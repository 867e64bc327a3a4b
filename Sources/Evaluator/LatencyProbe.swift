import Foundation
import Transformer

/// Latency of the model on this machine: prefill at several prompt lengths and decode per
/// token, as p50 / p95 over repeated runs after a warm-up.
public struct LatencyProbe: Sendable {
    public var promptLengths: [Int]
    public var decodeTokens: Int
    public var repetitions: Int

    public init(promptLengths: [Int] = [32, 128, 512], decodeTokens: Int = 32, repetitions: Int = 5) {
        self.promptLengths = promptLengths
        self.decodeTokens = decodeTokens
        self.repetitions = repetitions
    }

    public struct Percentiles: Sendable, Codable, Equatable {
        public let p50Milliseconds: Double
        public let p95Milliseconds: Double

        enum CodingKeys: String, CodingKey { case p50Milliseconds = "p50_ms", p95Milliseconds = "p95_ms" }

        init(_ seconds: [Double]) {
            let sorted = seconds.sorted()
            func at(_ q: Double) -> Double { sorted[min(sorted.count - 1, Int((q * Double(sorted.count - 1)).rounded()))] * 1000 }
            p50Milliseconds = at(0.5)
            p95Milliseconds = at(0.95)
        }
    }

    public struct Prefill: Sendable, Codable, Equatable {
        public let tokens: Int
        public let latency: Percentiles
        public let tokensPerSecond: Double

        enum CodingKeys: String, CodingKey { case tokens, latency, tokensPerSecond = "tokens_per_second" }
    }

    public struct Result: Sendable, Codable, Equatable {
        public let prefill: [Prefill]
        public let decodePerToken: Percentiles
        public let decodeTokensPerSecond: Double

        enum CodingKeys: String, CodingKey {
            case prefill, decodePerToken = "decode_per_token", decodeTokensPerSecond = "decode_tokens_per_second"
        }

        /// How far past its median the decode p95 may reach before the result counts as
        /// measured under load. On idle cores the slowest twentieth of decoded tokens stays
        /// within about 1.3× the median (1.23× for SmolLM2 on two EPYC cores); other work
        /// taking a core between tokens shows as a tail of 3–10× (a variant measured beside a
        /// fine-tune: 34 ms p50, 115 ms p95, slower than its idle base).
        public static let loadedSpread = 2.0

        /// Whether other work on the machine disturbed the measurement, by the decode tail.
        public var measuredUnderLoad: Bool { decodePerToken.p95Milliseconds > Self.loadedSpread * decodePerToken.p50Milliseconds }
    }

    public func measure(model: LlamaModel) throws -> Result {
        let vocabulary = model.config.vocabSize
        // Deterministic ordinary tokens (ids past the special tokens at the start of the vocabulary).
        func prompt(_ length: Int) -> [Int] { (0 ..< length).map { 1000 + ($0 * 7919) % (vocabulary - 1000) } }
        var prefill: [Prefill] = []
        for length in promptLengths.filter({ $0 <= model.config.maxPositionEmbeddings }) {
            let tokens = prompt(length)
            var samples: [Double] = []
            for run in 0 ... repetitions {
                let cache = model.makeCache(capacity: length)
                let start = DispatchTime.now().uptimeNanoseconds
                _ = model.logits(try model.forward(tokens, cache: cache), rows: 1)
                if run > 0 { samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) }
            }
            let p = Percentiles(samples)
            prefill.append(Prefill(tokens: length, latency: p, tokensPerSecond: Double(length) / (p.p50Milliseconds / 1000)))
        }
        var steps: [Double] = []
        let start = prompt(16)
        for run in 0 ... repetitions {
            let cache = model.makeCache(capacity: start.count + decodeTokens)
            var hidden = try model.forward(start, cache: cache)
            for _ in 0 ..< decodeTokens {
                let began = DispatchTime.now().uptimeNanoseconds
                let logits = model.logits(hidden, rows: 1)
                let token = Sampler.argmax(logits.pointer, count: vocabulary)
                hidden = try model.forward([token], cache: cache)
                if run > 0 { steps.append(Double(DispatchTime.now().uptimeNanoseconds - began) / 1e9) }
            }
        }
        let decode = Percentiles(steps)
        return Result(prefill: prefill, decodePerToken: decode, decodeTokensPerSecond: 1000 / decode.p50Milliseconds)
    }
}
