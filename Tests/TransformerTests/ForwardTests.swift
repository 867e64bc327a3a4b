import Checkpoint
import Foundation
import HubTestSupport
import Testing
@testable import Transformer

@Suite("Forward pass against a naive reference")
struct ForwardTests {
    func runtimeLogits(_ model: LlamaModel, _ tokens: [Int]) throws -> [[Double]] {
        let cache = model.makeCache(capacity: tokens.count)
        let hidden = try model.forward(tokens, cache: cache, outputRows: tokens.count)
        let logits = model.logits(hidden, rows: tokens.count)
        let v = model.config.vocabSize
        return (0 ..< tokens.count).map { t in (0 ..< v).map { Double(logits.pointer[t * v + $0]) } }
    }

    func maxDifference(_ a: [[Double]], _ b: [[Double]]) -> Double {
        zip(a, b).map { zip($0, $1).map { abs($0 - $1) }.max()! }.max()!
    }

    @Test("a heterogeneous model (GQA, dropped blocks and sublayers, narrowing residual) matches", arguments: [1, 2, 9, 23])
    func heterogeneous(length: Int) throws {
        let tiny = try TinyModel.heterogeneous()
        let directory = try TemporaryDirectory()
        let model = try tiny.load(in: directory)
        let tokens = (0 ..< length).map { ($0 * 7 + 3) % 32 }
        #expect(maxDifference(try runtimeLogits(model, tokens), tiny.referenceLogits(tokens)) < 1e-4)
    }

    @Test("a uniform model with tied embeddings matches")
    func uniform() throws {
        let tiny = try TinyModel.uniform()
        let directory = try TemporaryDirectory()
        let model = try tiny.load(in: directory)
        let tokens = [1, 5, 39, 0, 12, 12, 7, 30, 2, 2, 11]
        #expect(maxDifference(try runtimeLogits(model, tokens), tiny.referenceLogits(tokens)) < 1e-4)
    }

    @Test("decoding token by token from the KV cache equals one prefill pass")
    func incrementalDecode() throws {
        let tiny = try TinyModel.heterogeneous(seed: 7)
        let directory = try TemporaryDirectory()
        let model = try tiny.load(in: directory)
        let tokens = [3, 14, 15, 9, 26, 5, 31, 0, 8]
        let full = try runtimeLogits(model, tokens)
        let cache = model.makeCache(capacity: tokens.count)
        var hidden = try model.forward(Array(tokens.prefix(4)), cache: cache, outputRows: 1)
        for t in 3 ..< tokens.count {
            let logits = model.logits(hidden, rows: 1)
            let row = (0 ..< model.config.vocabSize).map { Double(logits.pointer[$0]) }
            #expect(zip(row, full[t]).map { abs($0 - $1) }.max()! < 1e-4, "position \(t)")
            if t + 1 < tokens.count { hidden = try model.forward([tokens[t + 1]], cache: cache, outputRows: 1) }
        }
        #expect(cache.length == tokens.count)
    }

    @Test("sequences packed into one pass do not see each other")
    func packedSequences() throws {
        let tiny = try TinyModel.heterogeneous(seed: 3)
        let directory = try TemporaryDirectory()
        let model = try tiny.load(in: directory)
        let sequences = [[1, 2, 3, 4, 5], [9], [31, 30, 29, 28, 27, 26, 25], [4, 4]]
        let scorer = SequenceScorer(model: model, tokensPerBatch: 100, logitRowsPerChunk: 3)
        let packed = try scorer.tokenLogProbabilities(sequences)
        for (sequence, values) in zip(sequences, packed) {
            let reference = tiny.referenceLogits(sequence)
            #expect(values.count == sequence.count - 1)
            for (t, value) in values.enumerated() {
                let row = reference[t]
                let m = row.max()!
                let expected = row[sequence[t + 1]] - (m + log(row.map { exp($0 - m) }.reduce(0, +)))
                #expect(abs(value - expected) < 1e-4)
            }
        }
    }

    @Test("residual rows given directly run the blocks as tokens do: packed sequences, each from position 0")
    func residualInput() throws {
        let tiny = try TinyModel.heterogeneous(seed: 5)
        let directory = try TemporaryDirectory()
        let model = try tiny.load(in: directory)
        let sequences = [[1, 2, 3, 4, 5, 6], [9, 8], [31, 30, 29]]
        let embedding = tiny.tensors["model.embed_tokens.weight"]!.values, width = tiny.config.embeddingWidth
        let rows = sequences.joined().flatMap { embedding[$0 * width ..< ($0 + 1) * width] }
        let hidden = try model.forwardResidual(rows, sequenceLengths: sequences.map(\.count))
        let final = tiny.config.finalWidth
        #expect(hidden.count == sequences.joined().count * final)
        let headName = tiny.config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight"
        var row = 0
        for sequence in sequences {
            let reference = tiny.referenceLogits(sequence)
            for t in sequence.indices {
                let x = hidden[(row + t) * final ..< (row + t + 1) * final].map(Double.init)
                let logits = tiny.apply(headName, tiny.rmsNorm(x, "model.norm.weight"))
                #expect(zip(logits, reference[t]).map { abs($0 - $1) }.max()! < 1e-4, "sequence \(sequence), position \(t)")
            }
            row += sequence.count
        }
        #expect(throws: RuntimeError.self) { try model.forwardResidual([1, 2], sequenceLengths: [1]) }
    }

    @Test("the cache refuses to overflow and bad tokens are named")
    func errors() throws {
        let tiny = try TinyModel.uniform()
        let directory = try TemporaryDirectory()
        let model = try tiny.load(in: directory)
        let cache = model.makeCache(capacity: 3)
        #expect(throws: RuntimeError.contextOverflow(needed: 4, limit: 3)) { try model.forward([1, 2, 3, 4], cache: cache) }
        #expect(throws: RuntimeError.tokenOutOfRange(token: 40, vocabularySize: 40)) { try model.forward([40], cache: cache) }
        #expect(throws: RuntimeError.emptyInput) { try model.forward([], cache: cache) }
    }
}

@Suite("Loading checkpoints")
struct LoadingTests {
    func expectLoadError(_ tiny: TinyModel, _ expected: RuntimeError) throws {
        let directory = try TemporaryDirectory()
        #expect(throws: expected) { try tiny.load(in: directory) }
    }

    @Test func missingTensor() throws {
        var tiny = try TinyModel.heterogeneous()
        tiny.tensors["model.layers.1.mlp.shortcut.weight"] = nil
        try expectLoadError(tiny, .missingTensor("model.layers.1.mlp.shortcut.weight"))
    }

    @Test func wrongShape() throws {
        var tiny = try TinyModel.heterogeneous()
        tiny.tensors["model.layers.0.mlp.up_proj.weight"] = ([19, 12], [Float](repeating: 0, count: 19 * 12))
        try expectLoadError(tiny, .shapeMismatch(tensor: "model.layers.0.mlp.up_proj.weight", expected: [20, 12], found: [19, 12]))
    }

    @Test func unexpectedTensor() throws {
        var tiny = try TinyModel.heterogeneous()
        tiny.tensors["model.layers.2.self_attn.q_proj.weight"] = ([4, 8], [Float](repeating: 0, count: 32))
        try expectLoadError(tiny, .unexpectedTensor("model.layers.2.self_attn.q_proj.weight"))
    }

    @Test("hub_layers whose widths do not chain are refused when the config is decoded")
    func brokenChain() throws {
        var tiny = try TinyModel.heterogeneous()
        tiny.config.hubLayers![2].inputWidth = 9
        #expect(throws: LlamaConfigError.self) { try tiny.config.validate() }
        let directory = try TemporaryDirectory()
        #expect(throws: LlamaConfigError.self) { try tiny.load(in: directory) }
    }
}

@Suite("Next-token distributions")
struct NextTokenTests {
    @Test("the last position's log-softmax matches the reference, for packed sequences")
    func lastPosition() throws {
        let tiny = try TinyModel.heterogeneous(seed: 11)
        let directory = try TemporaryDirectory()
        let model = try tiny.load(in: directory)
        let sequences = [[5, 6, 7], [1], [30, 2, 2, 9, 14]]
        let distributions = try SequenceScorer(model: model, tokensPerBatch: 6).nextTokenLogProbabilities(sequences)
        #expect(distributions.count == 3)
        for (sequence, distribution) in zip(sequences, distributions) {
            let row = tiny.referenceLogits(sequence).last!
            let m = row.max()!
            let normalizer = m + log(row.map { exp($0 - m) }.reduce(0, +))
            for (value, logit) in zip(distribution, row) { #expect(abs(Double(value) - (logit - normalizer)) < 1e-4) }
            #expect(abs(distribution.map { exp(Double($0)) }.reduce(0, +) - 1) < 1e-4)
        }
    }
}
