import Checkpoint
import Foundation
import HubCore
import HubTestSupport
import Testing

/// hubctl export-gguf: quantized blocks bit-identical to the reference quantizer, a uniform
/// model that converts back bit for bit, a heterogeneous one in llama.cpp's deci layout, and a
/// clear refusal for what llama.cpp cannot express.
@Suite("GGUF export")
struct GGUFExportTests {
    @Test("Q8_0, Q4_0 and F16 encodings are bit-identical to the gguf package's quantizer (ties, zeros, negative maxima included)")
    func quantizerParity() throws {
        let fixture = try Assets.fixtureJSON("quantize-blocks.json") as! [String: Any]
        let cases = fixture["cases"] as! [[String: Any]]
        #expect(cases.count == 9)
        for (index, item) in cases.enumerated() {
            let values = (item["bits"] as! [Int]).map { Float(bitPattern: UInt32($0)) }
            for (type, key) in [(GGMLType.q8_0, "q8_0"), (.q4_0, "q4_0"), (.f16, "f16")] {
                let bytes = try values.withUnsafeBufferPointer { try GGMLQuantizer.encode($0, columns: values.count, as: type) }
                #expect(bytes.map { String(format: "%02x", $0) }.joined() == item[key] as! String, "case \(index), \(type)")
            }
        }
        #expect(throws: GGMLQuantizer.QuantizerError.rowLength(type: .q8_0, columns: 20)) {
            try [Float](repeating: 1, count: 40).withUnsafeBufferPointer { try GGMLQuantizer.encode($0, columns: 20, as: .q8_0) }
        }
    }

    /// A byte-level tokenizer of 256 byte tokens, one merge and two special tokens, written as
    /// tokenizer.json and tokenizer_config.json beside a random model of its vocabulary size.
    static func model(_ config: LlamaConfig, seed: UInt64, in directory: URL) throws -> TinyCheckpoint {
        let bytes = (0 ..< 256).map { String(ByteLevelAlphabetForTests.character($0)) }
        let tokenizer = try BPETokenizer(tokens: bytes + ["ab", "<|endoftext|>", "<|im_start|>"], merges: ["a b"], preTokenizer: .smollm,
                                         specialTokenIDs: [257, 258], bos: 258, eos: 257)
        var config = config
        config.vocabSize = tokenizer.vocabularySize
        let model = TinyCheckpoint(random: config, seed: seed)
        try model.write(to: directory)
        try JSONSerialization.data(withJSONObject: tokenizer.huggingFaceJSON()).write(to: directory.appendingPathComponent("tokenizer.json"))
        var tokenizerConfig = tokenizer.huggingFaceConfigJSON(chatTemplate: "{{ messages }}", maxLength: 64)
        tokenizerConfig["bos_token"] = "<|im_start|>"
        tokenizerConfig["eos_token"] = "<|endoftext|>"
        try JSONSerialization.data(withJSONObject: tokenizerConfig).write(to: directory.appendingPathComponent("tokenizer_config.json"))
        return model
    }

    /// A uniform model whose rows are whole blocks of 32 (hidden 32, FFN 64).
    static func uniformConfig() throws -> LlamaConfig {
        var config = try TinyCheckpoint.uniform().config
        config.hiddenSize = 32
        config.intermediateSize = 64
        return config
    }

    @Test("a uniform model is written in llama.cpp's llama layout and converts back bit for bit, tokenizer included")
    func uniformRoundTrip() throws {
        let directory = try TemporaryDirectory()
        let config = try Self.uniformConfig()
        let model = try Self.model(config, seed: 3, in: directory.path("model"))
        let file = directory.path("model.f32.gguf")
        let summary = try GGUFExporter.export(ModelFiles(directory: directory.path("model")), as: .f32, name: "tiny", to: file)
        #expect(summary.layout == .llama && summary.type == .f32)

        let gguf = try GGUFFile(path: file.path)
        #expect(gguf["general.architecture"]?.string == "llama" && gguf["llama.attention.head_count"]?.integer == 4)
        #expect(gguf["llama.attention.head_count_kv"]?.integer == 1 && gguf["tokenizer.ggml.pre"]?.string == "smollm")
        #expect(gguf["tokenizer.ggml.bos_token_id"]?.integer == 258 && gguf["tokenizer.chat_template"]?.string == "{{ messages }}")
        #expect(gguf.tensorInfo(named: "output.weight") == nil, "tied embeddings are not written twice")

        let back = directory.path("back")
        _ = try GGUFConverter.convert(gguf, to: back)
        let restored = try SafetensorsFile(path: back.appendingPathComponent("model.safetensors").path)
        #expect(Set(restored.entries.map(\.name)) == Set(model.tensors.keys))
        for (name, tensor) in model.tensors {
            #expect(try restored.floats(name) == tensor.values, "\(name)")
        }
        // hubctl run --json --logits, which fixtures/scripts/llama_cpp_check.py compares with: the
        // prompt's tokens, the greedy continuation (its first token is the last row's argmax).
        let run = try HubctlBinary.run(["run", directory.path("model").path, "ab a b", "--max-tokens", "3", "--json", "--logits", "--threads", "1"])
        #expect(run.status == 0, "\(run.stderr)")
        let generated = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let prompt = try #require(generated["prompt_tokens"] as? [Int]), rows = try #require(generated["logits"] as? [[Double]])
        let expectedPrompt = try BPETokenizer(huggingFaceJSON: directory.path("model/tokenizer.json")).encode("ab a b")
        #expect(prompt == expectedPrompt && prompt.contains(256) && rows.count == prompt.count && rows.allSatisfy { $0.count == 259 })
        let last = rows[rows.count - 1]
        #expect((generated["tokens"] as? [Int])?.first == last.indices.max { last[$0] < last[$1] })

        let original = try BPETokenizer(huggingFaceJSON: directory.path("model/tokenizer.json"))
        let reread = try BPETokenizer(huggingFaceJSON: back.appendingPathComponent("tokenizer.json"))
        #expect(reread.tokens == original.tokens && reread.merges == original.merges && reread.eosTokenID == 257)
    }

    @Test("a Q8_0 or Q4_0 GGUF converts with its blocks kept: the quantizer's bytes, rows in HF's rotary order, and the runtime's logits of hubctl quantize")
    func keptBlocks() throws {
        let directory = try TemporaryDirectory()
        let config = try Self.uniformConfig()
        let model = try Self.model(config, seed: 5, in: directory.path("model"))
        for type in [GGMLType.q8_0, .q4_0] {
            let name = QuantizedTensors.name(of: type)
            let file = directory.path("model.\(name).gguf")
            _ = try GGUFExporter.export(ModelFiles(directory: directory.path("model")), as: type, name: "tiny", to: file)
            let kept = directory.path("kept-\(name)")
            let summary = try GGUFConverter.convert(try GGUFFile(path: file.path), to: kept, keepBlocks: true)
            #expect(summary.quantization == QuantizedTensors.Layout(type: type))
            let weights = try SafetensorsFile(path: kept.appendingPathComponent("model.safetensors").path)
            #expect(try QuantizedTensors.layout(of: weights) == QuantizedTensors.Layout(type: type))
            // Every matrix holds the blocks the quantizer makes of the original (Q and K in HF
            // row order, so the GGUF's interleaving was undone on whole rows); norms are fp32.
            for (tensorName, tensor) in model.tensors {
                let entry = try #require(weights[tensorName])
                if tensor.shape.count == 1 {
                    let values = try weights.floats(tensorName)
                    #expect(entry.dtype == .f32 && values == tensor.values, "\(tensorName)")
                    continue
                }
                let expected = try tensor.values.withUnsafeBufferPointer { try GGMLQuantizer.encode($0, columns: tensor.shape[1], as: type) }
                #expect(entry.dtype == .u8 && Array(weights.bytes(of: entry)) == expected, "\(tensorName) in \(name)")
            }
            // The runtime on the kept blocks gives exactly the logits of hubctl quantize's output.
            let quantized = directory.path("quantized-\(name)")
            let made = try HubctlBinary.run(["quantize", directory.path("model").path, "--type", name, "--head-type", name, "-o", quantized.path])
            #expect(made.status == 0, "\(made.stderr)")
            func logits(_ model: URL) throws -> [[Double]] {
                let run = try HubctlBinary.run(["run", model.path, "ab a b", "--max-tokens", "1", "--json", "--logits", "--threads", "1"])
                #expect(run.status == 0, "\(run.stderr)")
                return try #require((try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])?["logits"] as? [[Double]])
            }
            let fromGGUF = try logits(kept), fromQuantize = try logits(quantized)
            #expect(!fromGGUF.isEmpty && fromGGUF == fromQuantize, "\(name)")
            // Without --keep-blocks the same file becomes fp32, as before.
            let plain = try GGUFConverter.convert(try GGUFFile(path: file.path), to: directory.path("plain-\(name)"))
            #expect(plain.quantization == nil)
            #expect(try SafetensorsFile(path: directory.path("plain-\(name)/model.safetensors").path).entries.allSatisfy { $0.dtype == .f32 })
        }

        // hubctl import --keep-blocks: a base of blocks, counted by its logical shapes; the
        // same file imported as fp32 is another revision, and each import again is a no-op.
        let dataDir = directory.path("hub").path, gguf = directory.path("model.q8_0.gguf").path
        func card(_ repository: String) throws -> [String: Any] {
            let shown = try HubctlBinary.run(["card", repository, "--json", "--data-dir", dataDir])
            return try #require(try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any], "\(shown.stderr)")
        }
        let blocks = try HubctlBinary.run(["import", gguf, "tiny/q8", "--keep-blocks", "--data-dir", dataDir])
        #expect(blocks.status == 0, "\(blocks.stderr)")
        let keptCard = try card("tiny/q8")
        #expect((keptCard["message"] as? String)?.contains("keeping its Q8_0 blocks") == true, "\(keptCard)")
        let floats = try HubctlBinary.run(["import", gguf, "tiny/q8", "--data-dir", dataDir])
        #expect(floats.status == 0 && floats.stdout.contains("imported tiny/q8"), "\(floats.stdout)\(floats.stderr)")
        let floatCard = try card("tiny/q8")
        #expect((floatCard["parameters"] as? [String: Any])?["total"] as? Int == (keptCard["parameters"] as? [String: Any])?["total"] as? Int)
        #expect((floatCard["bytes"] as! Int) > 3 * (keptCard["bytes"] as! Int))
        let again = try HubctlBinary.run(["import", gguf, "tiny/q8", "--keep-blocks", "--data-dir", dataDir])
        #expect(again.status == 0 && again.stdout.contains("already holds"), "\(again.stdout)")
    }

    @Test("blocks of different heads and FFN widths, one without attention, one without MLP: llama.cpp's deci layout, Q8_0 within its step")
    func heterogeneousDeci() throws {
        let directory = try TemporaryDirectory()
        var config = try TinyCheckpoint.uniform().config
        config.hiddenSize = 32
        config.tieWordEmbeddings = false
        config.numHiddenLayers = 3
        config.hubLayers = [
            LayerShape(inputWidth: 32, attentionHeads: 4, keyValueHeads: 2, headDim: 8, attentionOutputWidth: 32, intermediateSize: 64, outputWidth: 32),
            LayerShape(inputWidth: 32, attentionHeads: 2, keyValueHeads: 1, headDim: 8, attentionOutputWidth: 32, intermediateSize: 0, outputWidth: 32),
            LayerShape(inputWidth: 32, attentionHeads: 0, keyValueHeads: 0, headDim: 8, attentionOutputWidth: 32, intermediateSize: 32, outputWidth: 32),
        ]
        let model = try Self.model(config, seed: 4, in: directory.path("model"))
        let file = directory.path("model.q8_0.gguf")
        let summary = try GGUFExporter.export(ModelFiles(directory: directory.path("model")), as: .q8_0, name: "tiny", to: file)
        #expect(summary.layout == .deci)

        let gguf = try GGUFFile(path: file.path)
        #expect(gguf["deci.attention.head_count"]?.array?.compactMap(\.integer) == [4, 2, 0])
        #expect(gguf["deci.attention.head_count_kv"]?.array?.compactMap(\.integer) == [2, 1, 0])
        #expect(gguf["deci.feed_forward_length"]?.array?.compactMap(\.integer) == [64, 32, 32])
        #expect(gguf["deci.attention.key_length"]?.integer == 8)
        #expect(gguf.tensorInfo(named: "blk.2.attn_q.weight") == nil && gguf.tensorInfo(named: "output.weight")?.type == .q8_0)
        #expect(gguf.tensorInfo(named: "blk.0.attn_norm.weight")?.type == .f32)

        func floats(_ name: String) throws -> [Float] {
            let info = try #require(gguf.tensorInfo(named: name))
            var out = [Float](repeating: .nan, count: info.elementCount)
            try out.withUnsafeMutableBufferPointer { try Dequantizer.dequantize(gguf.rawBytes(of: info), type: info.type, tensor: name, into: $0) }
            return out
        }
        // The missing MLP is an all-zero FFN: it adds nothing.
        #expect(try floats("blk.1.ffn_down.weight").allSatisfy { $0 == 0 } && floats("blk.1.ffn_norm.weight").allSatisfy { $0 == 1 })
        // Q8_0 keeps each value within 0.6 of a step d = max|block| / 127 of the original (half
        // a step from rounding, up to 127 × 2⁻¹¹ of one more from storing d as fp16);
        // K rows come back in llama.cpp's rotary order: row 2i + j of a head is HF row j·d/2 + i.
        let down = model.tensors["model.layers.0.mlp.down_proj.weight"]!.values
        let bound = (down.map(abs).max() ?? 0) / 127 * 0.6
        #expect(zip(try floats("blk.0.ffn_down.weight"), down).allSatisfy { abs($0 - $1) <= bound })
        let keys = model.tensors["model.layers.0.self_attn.k_proj.weight"]!.values, exported = try floats("blk.0.attn_k.weight")
        let step = (keys.map(abs).max() ?? 0) / 127 * 0.6
        for head in 0 ..< 2 {
            for i in 0 ..< 4 {
                for j in 0 ..< 2 {
                    let gguf = (head * 8 + 2 * i + j) * 32, hf = (head * 8 + j * 4 + i) * 32
                    #expect(zip(exported[gguf ..< gguf + 32], keys[hf ..< hf + 32]).allSatisfy { abs($0 - $1) <= step })
                }
            }
        }
    }

    @Test("a residual that changes width is refused with what would work, and nothing is written; so are unknown types and existing files")
    func refusals() throws {
        let directory = try TemporaryDirectory()
        _ = try Self.model(try TinyCheckpoint.heterogeneous().config, seed: 5, in: directory.path("sliced"))
        let file = directory.path("sliced.gguf")
        #expect {
            try GGUFExporter.export(ModelFiles(directory: directory.path("sliced")), as: .f32, name: "x", to: file)
        } throws: { error in
            let text = "\(error)"
            return text.contains("block 1 changes the residual width") && text.contains("transformers")
        }
        #expect(!FileManager.default.fileExists(atPath: file.path))

        let cli = try HubctlBinary.run(["export-gguf", directory.path("sliced").path, "--type", "q4_1", "-o", file.path])
        #expect(cli.status != 0 && cli.stderr.contains("--type q4_1 is not one of f32, f16, q8_0, q4_0"))
        try Data("x".utf8).write(to: file)
        let exists = try HubctlBinary.run(["export-gguf", directory.path("sliced").path, "-o", file.path])
        let kept = try Data(contentsOf: file)
        #expect(exists.status != 0 && exists.stderr.contains("exists") && kept == Data("x".utf8))
    }
}
