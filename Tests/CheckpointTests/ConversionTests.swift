import Checkpoint
import Foundation
import HubCore
import HubTestSupport
import Testing

@Suite("GGUF to Hugging Face conversion")
struct ConversionTests {
    @Test("every converted tensor equals transformers' own load of the GGUF, byte for byte")
    func matchesTransformers() throws {
        let gguf = try GGUFFile(path: Assets.modelGGUF().path)
        let directory = try TemporaryDirectory()
        let output = directory.path("smollm2-hf")
        let summary = try GGUFConverter.convert(gguf, to: output)
        #expect(summary.tensorCount == 272)
        #expect(try FileManager.default.contentsOfDirectory(atPath: output.path).sorted() ==
            ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])

        let fixture = try #require(try Assets.fixtureJSON("smollm2-135m-hf-tensors.json") as? [String: Any])
        let expected = try #require(fixture["tensors"] as? [String: String])
        let weights = try SafetensorsFile(path: output.appendingPathComponent("model.safetensors").path)
        #expect(Set(weights.entries.map(\.name)) == Set(expected.keys))
        for entry in weights.entries {
            #expect(entry.dtype == .f32)
            #expect(SHA256Digest.of(weights.bytes(of: entry)).hex == expected[entry.name], "\(entry.name)")
        }

        let config = try LlamaConfig.load(from: output.appendingPathComponent("config.json"))
        #expect(config.hiddenSize == 576)
        #expect(config.intermediateSize == 1536)
        #expect(config.numHiddenLayers == 30)
        #expect(config.numAttentionHeads == 9)
        #expect(config.numKeyValueHeads == 3)
        #expect(config.vocabSize == 49152)
        #expect(config.ropeTheta == 100000)
        #expect(config.tieWordEmbeddings)
        #expect(config.eosTokenID == 2)
        let parameters = weights.entries.reduce(0) { $0 + $1.elementCount }
        #expect(parameters == 134_515_008)

        let tokenizer = try BPETokenizer(huggingFaceJSON: output.appendingPathComponent("tokenizer.json"))
        #expect(tokenizer.eosTokenID == 2)
        let original = try BPETokenizer(gguf: gguf)
        #expect(tokenizer.encode("The history of the railway in Britain began") == original.encode("The history of the railway in Britain began"))
    }

    @Test("an existing destination is never overwritten")
    func refusesExistingDestination() throws {
        let gguf = try GGUFFile(path: Assets.modelGGUF().path)
        let directory = try TemporaryDirectory()
        let output = directory.path("exists")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: false)
        try Data("keep".utf8).write(to: output.appendingPathComponent("mine.txt"))
        #expect(throws: AtomicWriteError.self) { try GGUFConverter.convert(gguf, to: output) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: output.path) == ["mine.txt"])
    }

    @Test("an unsupported architecture is refused and leaves no output")
    func unsupportedArchitecture() throws {
        var builder = GGUFBuilder()
        builder.metadata = [("general.architecture", .string("mamba"))]
        builder.tensors = [GGUFBuilder.f32Tensor("x", [1])]
        let directory = try TemporaryDirectory()
        try builder.write(to: directory.path("m.gguf"))
        let gguf = try GGUFFile(path: directory.path("m.gguf").path)
        #expect(throws: ConversionError.unsupportedArchitecture(path: gguf.path, architecture: "mamba")) {
            try GGUFConverter.convert(gguf, to: directory.path("out"))
        }
        #expect(try directory.contents() == ["m.gguf"])
    }

    @Test("a tensor whose shape disagrees with the metadata is refused and leaves no output")
    func shapeMismatch() throws {
        let directory = try TemporaryDirectory()
        let url = directory.path("tiny.gguf")
        var builder = TinyLlamaGGUF.builder()
        builder.tensors[0] = GGUFBuilder.f32Tensor("token_embd.weight", [Float](repeating: 0.1, count: 260 * 4), dims: [4, 260])
        try builder.write(to: url)
        let gguf = try GGUFFile(path: url.path)
        #expect(throws: ConversionError.self) { try GGUFConverter.convert(gguf, to: directory.path("out")) }
        #expect(try directory.contents() == ["tiny.gguf"])
    }

    @Test("the rotary un-permutation restores Hugging Face's row order on a tiny model")
    func tinyModelPermutation() throws {
        let directory = try TemporaryDirectory()
        let url = directory.path("tiny.gguf")
        try TinyLlamaGGUF.builder().write(to: url)
        let gguf = try GGUFFile(path: url.path)
        let output = directory.path("out")
        _ = try GGUFConverter.convert(gguf, to: output)
        let weights = try SafetensorsFile(path: output.appendingPathComponent("model.safetensors").path)
        // GGUF row 2i+j of each head holds Hugging Face row j*headDim/2 + i (headDim 4, 2 heads, 8 columns).
        let q = try weights.floats("model.layers.0.self_attn.q_proj.weight")
        let rowsInHFOrder = stride(from: 0, to: q.count, by: 8).map { Int(q[$0]) }
        #expect(rowsInHFOrder == [0, 2, 1, 3, 4, 6, 5, 7])
        let k = try weights.floats("model.layers.0.self_attn.k_proj.weight")
        #expect(stride(from: 0, to: k.count, by: 8).map { Int(k[$0]) } == [0, 2, 1, 3])
        let v = try weights.floats("model.layers.0.self_attn.v_proj.weight")
        #expect(stride(from: 0, to: v.count, by: 8).map { Int(v[$0]) } == [0, 1, 2, 3])
    }
}

/// A two-head LLaMA GGUF small enough to reason about by hand: hidden 8, one block, head
/// dim 4, one KV head, a 260-token byte vocabulary. Row r of every projection starts with r.
enum TinyLlamaGGUF {
    static func builder() -> GGUFBuilder {
        let hidden = 8, ffn = 16, vocab = 260
        var builder = GGUFBuilder()
        let tokens = (0 ..< 256).map { GGUFBuilder.Value.string(String(ByteLevelAlphabetForTests.character($0))) }
            + ["<s>", "</s>", "<a>", "<b>"].map { GGUFBuilder.Value.string($0) }
        builder.metadata = [
            ("general.architecture", .string("llama")),
            ("llama.block_count", .u32(1)), ("llama.context_length", .u32(64)), ("llama.embedding_length", .u32(UInt32(hidden))),
            ("llama.feed_forward_length", .u32(UInt32(ffn))), ("llama.attention.head_count", .u32(2)),
            ("llama.attention.head_count_kv", .u32(1)), ("llama.rope.freq_base", .f32(10000)),
            ("llama.attention.layer_norm_rms_epsilon", .f32(1e-5)),
            ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("gpt2")),
            ("tokenizer.ggml.tokens", .array(8, tokens)), ("tokenizer.ggml.merges", .array(8, [])),
            ("tokenizer.ggml.token_type", .array(5, (0 ..< vocab).map { .i32($0 >= 256 ? 3 : 1) })),
            ("tokenizer.ggml.bos_token_id", .u32(256)), ("tokenizer.ggml.eos_token_id", .u32(257)),
        ]
        func matrix(_ name: String, rows: Int, columns: Int) -> GGUFBuilder.Tensor {
            let values = (0 ..< rows * columns).map { Float($0 / columns) + Float($0 % columns) / 100 }
            return GGUFBuilder.f32Tensor(name, values, dims: [UInt64(columns), UInt64(rows)])
        }
        builder.tensors = [
            matrix("token_embd.weight", rows: vocab, columns: hidden),
            GGUFBuilder.f32Tensor("output_norm.weight", [Float](repeating: 1, count: hidden)),
            GGUFBuilder.f32Tensor("blk.0.attn_norm.weight", [Float](repeating: 1, count: hidden)),
            GGUFBuilder.f32Tensor("blk.0.ffn_norm.weight", [Float](repeating: 1, count: hidden)),
            matrix("blk.0.attn_q.weight", rows: 8, columns: hidden),
            matrix("blk.0.attn_k.weight", rows: 4, columns: hidden),
            matrix("blk.0.attn_v.weight", rows: 4, columns: hidden),
            matrix("blk.0.attn_output.weight", rows: hidden, columns: 8),
            matrix("blk.0.ffn_gate.weight", rows: ffn, columns: hidden),
            matrix("blk.0.ffn_up.weight", rows: ffn, columns: hidden),
            matrix("blk.0.ffn_down.weight", rows: hidden, columns: ffn),
        ]
        return builder
    }
}
