import COpenBLAS
import Checkpoint
import Foundation
import HubCore
import HubTestSupport
import Testing
@testable import Compressor
@testable import Transformer

@Suite("Quantized weights in the runtime", .serialized)
struct QuantizationTests {
    /// A small model whose every matrix has rows of whole blocks (widths 64, 96, 32-wide heads).
    static func blockModel(seed: UInt64 = 7, tied: Bool = true) throws -> TinyCheckpoint {
        let config = try LlamaConfig(vocabSize: 96, hiddenSize: 64, intermediateSize: 96, numHiddenLayers: 2, numAttentionHeads: 2,
                                     numKeyValueHeads: 1, maxPositionEmbeddings: 64, rmsNormEps: 1e-5, ropeTheta: 10000,
                                     tieWordEmbeddings: tied)
        return TinyCheckpoint(random: config, seed: seed)
    }

    static func write(_ checkpoint: TinyCheckpoint, in directory: URL) throws -> ModelFiles {
        try checkpoint.write(to: directory)
        let tokenizer = directory.appendingPathComponent("tokenizer.json")
        try Data("{}".utf8).write(to: tokenizer)
        return ModelFiles(config: directory.appendingPathComponent("config.json"), weights: directory.appendingPathComponent("model.safetensors"),
                          tokenizer: tokenizer, tokenizerConfig: nil)
    }

    /// The fp32 model the quantized file stands for: every block widened by `Dequantizer`.
    static func dequantizedModel(_ directory: URL) throws -> LlamaModel {
        let file = try SafetensorsFile(path: directory.appendingPathComponent("model.safetensors").path)
        let layout = try #require(try QuantizedTensors.layout(of: file))
        var tensors: [String: (shape: [Int], values: [Float])] = [:]
        for entry in file.entries {
            if entry.dtype == .u8 {
                let shape = QuantizedTensors.logicalShape(of: entry, layout: layout)
                var values = [Float](repeating: 0, count: shape.reduce(1, *))
                try values.withUnsafeMutableBufferPointer {
                    try Dequantizer.dequantize(file.bytes(of: entry), type: layout.type(of: entry.name), tensor: entry.name, into: $0)
                }
                tensors[entry.name] = (shape, values)
            } else {
                tensors[entry.name] = (entry.shape, try file.floats(entry.name))
            }
        }
        let config = try LlamaConfig.load(from: directory.appendingPathComponent("config.json"))
        return try LlamaModel(weights: ModelWeights(config: config, tensors: tensors))
    }

    @Test("Q8_0 and Q4_0 products: several rows (tiles and GEMM) equal fp32 products with the dequantized weights; one row (int8 GEMV, threads split by rows) equals them with the row quantized to Q8_0, within 1% of the fp32 product",
          arguments: [GGMLType.q8_0, .q4_0])
    func products(type: GGMLType) throws {
        var generator = SplitMix64(seed: 11)
        let rows = 300, columns = 160, batch = 5
        let values = (0 ..< rows * columns).map { _ in Float(generator.nextUnit()) * 2 - 1 }
        let blocks = try values.withUnsafeBufferPointer { try GGMLQuantizer.encode($0, columns: columns, as: type) }
        var widened = [Float](repeating: 0, count: rows * columns)
        try blocks.withUnsafeBytes { raw in
            try widened.withUnsafeMutableBufferPointer { try Dequantizer.dequantize(raw, type: type, tensor: "w", into: $0) }
        }
        let x = (0 ..< batch * columns).map { _ in Float(generator.nextUnit()) * 2 - 1 }
        let start = (0 ..< batch * rows).map { _ in Float(generator.nextUnit()) }
        let saved = BLASThreads.count
        defer { BLASThreads.count = saved }
        try blocks.withUnsafeBytes { raw in
            let quantized = Matrix(quantized: QuantizedMatrix(type: type, blocks: raw.baseAddress!, rows: rows, columns: columns))
            #expect(quantized.byteCount == rows * columns / 32 * type.bytesPerBlock)
            try widened.withUnsafeBufferPointer { w in
                let reference = Matrix(data: w.baseAddress!, rows: rows, columns: columns)
                // One row goes through ggml's Q8_0 quantizer first: the GEMV's block products are
                // exact integer dot products, so it equals the fp32 product of the dequantized
                // weights with the dequantized row to float rounding.
                let first = Array(x[0 ..< columns])
                let rowBlocks = try first.withUnsafeBufferPointer { try GGMLQuantizer.encode($0, columns: columns, as: .q8_0) }
                var rounded = [Float](repeating: 0, count: columns)
                try rowBlocks.withUnsafeBytes { raw in
                    try rounded.withUnsafeMutableBufferPointer { try Dequantizer.dequantize(raw, type: .q8_0, tensor: "x", into: $0) }
                }
                for threads in [1, 2] {
                    BLASThreads.count = threads
                    for n in [1, batch] {
                        for accumulate in [false, true] {
                            var expected = start, exact = start, found = start
                            Kernels.linear(x, rows: n, ldx: columns, reference, &expected, ldy: rows, accumulate: accumulate)
                            Kernels.linear(n == 1 ? rounded : x, rows: n, ldx: columns, reference, &exact, ldy: rows, accumulate: accumulate)
                            Kernels.linear(x, rows: n, ldx: columns, quantized, &found, ldy: rows, accumulate: accumulate)
                            let scale = expected.map(abs).max()!
                            let error = zip(exact, found).map { abs($0 - $1) }.max()!
                            #expect(error <= 1e-5 * scale, "\(type) rows \(n), threads \(threads), accumulate \(accumulate): \(error) of \(scale)")
                            let rounding = zip(expected, found).map { abs($0 - $1) }.max()!
                            #expect(rounding <= 1e-2 * scale, "\(type) rows \(n): the activation's rounding moved the product by \(rounding) of \(scale)")
                        }
                    }
                }
                #expect(["avx2", "avx512-vnni"].contains(QuantizedKernels.instructionSet))
                // Products asked for from several threads at once (two generations served side
                // by side) run one at a time on the shared helpers, each with its own result.
                BLASThreads.count = 2
                var alone = [Float](repeating: 0, count: rows)
                Kernels.linear(x, rows: 1, ldx: columns, quantized, &alone, ldy: rows, accumulate: false)
                let lock = NSLock()
                nonisolated(unsafe) var results = [[Float]](repeating: [], count: 8)
                nonisolated(unsafe) let shared = quantized
                DispatchQueue.concurrentPerform(iterations: 8) { index in
                    var y = [Float](repeating: 0, count: rows)
                    for _ in 0 ..< 20 { Kernels.linear(x, rows: 1, ldx: columns, shared, &y, ldy: rows, accumulate: false) }
                    lock.withLock { results[index] = y }
                }
                #expect(results.allSatisfy { $0 == alone })
                // An embedding row comes out widened exactly as Dequantizer widens it.
                var row = [Float](repeating: 0, count: columns)
                quantized.copyRow(123, into: &row)
                #expect(row == Array(widened[123 * columns ..< 124 * columns]))
            }
        }
    }

    @Test("a quantized checkpoint stays in blocks in memory and gives, within the rounding of its activations, the logits and greedy tokens of its dequantized weights",
          arguments: [GGMLType.q8_0, .q4_0])
    func model(type: GGMLType) throws {
        let scratch = try TemporaryDirectory()
        let files = try Self.write(Self.blockModel(tied: type == .q8_0), in: scratch.url.appendingPathComponent("fp32"))
        let output = scratch.url.appendingPathComponent("q")
        let record = try ModelQuantizer.quantize(files, to: type, destination: output)
        #expect(record.type == QuantizedTensors.name(of: type) && record.keptMatrices.isEmpty)
        // Under Q4_0 the output matrix (here the untied lm_head) is Q8_0; the embedding is Q4_0.
        #expect(record.headType == "q8_0")
        #expect(record.parentCheckpointSHA256 == (try SHA256Digest.ofFile(at: files.weights)))
        #expect(try FileManager.default.contentsOfDirectory(atPath: output.path).sorted()
                == ["config.json", "model.safetensors", "quantization.json", "tokenizer.json"])
        let validator = try JSONSchemaValidator(schemaAt: Assets.repositoryRoot.appendingPathComponent("schemas/quantization.schema.json"))
        #expect(validator.violations(of: try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("quantization.json")))) == [])

        let weights = try ModelWeights(directory: output)
        #expect(weights.quantization == type)
        #expect(weights.embedding.quantized?.type == type && weights.blocks.allSatisfy { $0.q?.quantized?.type == type && $0.down?.quantized?.type == type })
        #expect(weights.head.quantized?.type == .q8_0)
        let fp32 = try ModelWeights(directory: files.config.deletingLastPathComponent())
        #expect(Double(weights.weightBytes) < Double(fp32.weightBytes) * (type == .q8_0 ? 0.3 : 0.2))
        #expect(throws: RuntimeError.self) { try weights.requireFloat(for: "training") }

        let quantized = try LlamaModel(weights: weights), reference = try Self.dequantizedModel(output)
        let prompt = [3, 17, 42, 5, 88, 1, 60, 9]
        // Prompt (tiles + GEMM, fp32 activations), then one token at a time (int8 GEMV, the
        // activations rounded to Q8_0 as llama.cpp rounds them), against the same steps in fp32.
        // Every step's logits come from one row through the head's GEMV, so every step carries
        // the activations' rounding: on this random two-block model up to 3% of the largest
        // logit (the GEMV itself is exact to float rounding: the products test).
        let cacheQ = quantized.makeCache(capacity: 32), cacheR = reference.makeCache(capacity: 32)
        var tokens = prompt
        for step in 0 ..< 6 {
            let input = step == 0 ? prompt : [tokens.last!]
            let logitsQ = quantized.logits(try quantized.forward(input, cache: cacheQ), rows: 1).array
            let logitsR = reference.logits(try reference.forward(input, cache: cacheR), rows: 1).array
            let scale = logitsR.map(abs).max()!
            let error = zip(logitsQ, logitsR).map { abs($0 - $1) }.max()!
            #expect(error <= 5e-2 * scale, "step \(step): \(error) of \(scale)")
            let ranked = logitsR.indices.sorted { logitsR[$0] > logitsR[$1] }
            let next = ranked[0]
            // The greedy token agrees wherever the reference's margin exceeds twice the error.
            if logitsR[ranked[0]] - logitsR[ranked[1]] > 2 * error {
                #expect(logitsQ.indices.max { logitsQ[$0] < logitsQ[$1] }! == next, "step \(step)")
            }
            tokens.append(next)
        }
    }

    @Test("rows that are not whole blocks stay fp32 and are listed; bad requests are refused and write nothing")
    func refusals() throws {
        let scratch = try TemporaryDirectory()
        // The heterogeneous tiny model's widths (12, 10, 8, 20, 7, 16) are no multiples of 32.
        let odd = try Self.write(TinyCheckpoint.heterogeneous(), in: scratch.url.appendingPathComponent("odd"))
        let nothing = scratch.url.appendingPathComponent("nothing")
        #expect(throws: QuantizationError.nothingToQuantize) { _ = try ModelQuantizer.quantize(odd, to: .q8_0, destination: nothing) }
        #expect(!FileManager.default.fileExists(atPath: nothing.path))
        #expect(throws: QuantizationError.unsupportedType("Q4_1")) {
            _ = try ModelQuantizer.quantize(odd, to: .q4_1, destination: nothing)
        }
        #expect(QuantizedTensors.type(named: "q5_k") == nil && QuantizedTensors.type(named: "Q8_0") == .q8_0)

        // A model with one 32-wide matrix family and one odd one: the odd ones are kept and named.
        var mixed = try Self.blockModel(seed: 3)
        mixed.config.intermediateSize = 40
        for layer in 0 ..< 2 {
            let p = "model.layers.\(layer).mlp."
            mixed.tensors[p + "gate_proj.weight"] = ([40, 64], [Float](repeating: 0.01, count: 40 * 64))
            mixed.tensors[p + "up_proj.weight"] = ([40, 64], [Float](repeating: 0.02, count: 40 * 64))
            mixed.tensors[p + "down_proj.weight"] = ([64, 40], [Float](repeating: 0.03, count: 64 * 40))
        }
        let mixedFiles = try Self.write(mixed, in: scratch.url.appendingPathComponent("mixed"))
        let output = scratch.url.appendingPathComponent("mixed-q8")
        let record = try ModelQuantizer.quantize(mixedFiles, to: .q8_0, destination: output)
        #expect(record.keptMatrices.map(\.name) == ["model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight"])
        let weights = try ModelWeights(directory: output)
        #expect(weights.blocks[0].down?.quantized == nil && weights.blocks[0].gate?.quantized != nil)

        // Quantizing twice is refused; the destination is left alone.
        let twice = scratch.url.appendingPathComponent("twice")
        let again = ModelFiles(config: output.appendingPathComponent("config.json"), weights: output.appendingPathComponent("model.safetensors"),
                               tokenizer: output.appendingPathComponent("tokenizer.json"), tokenizerConfig: nil)
        #expect(throws: QuantizationError.alreadyQuantized("q8_0")) { _ = try ModelQuantizer.quantize(again, to: .q4_0, destination: twice) }
        #expect(!FileManager.default.fileExists(atPath: twice.path))
        // An existing destination is never overwritten.
        #expect(throws: AtomicWriteError.self) { _ = try ModelQuantizer.quantize(mixedFiles, to: .q4_0, destination: output) }
        let q4 = try ModelQuantizer.quantize(mixedFiles, to: .q4_0, destination: scratch.url.appendingPathComponent("q4"))
        #expect(q4.type == "q4_0" && q4.headType == "q8_0")
        let q4Head = try ModelQuantizer.quantize(mixedFiles, to: .q4_0, headType: .q4_0, destination: scratch.url.appendingPathComponent("q4-head"))
        #expect(q4Head.headType == "q4_0" && q4Head.bytes < q4.bytes)
        let layout = try #require(try QuantizedTensors.layout(of: SafetensorsFile(path: scratch.url.appendingPathComponent("q4/model.safetensors").path)))
        #expect(layout == QuantizedTensors.Layout(type: .q4_0, overrides: ["model.embed_tokens.weight": .q8_0]))
    }
}
