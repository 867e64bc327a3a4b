import Checkpoint
import Foundation
import HubTestSupport
import Testing
@testable import Transformer

/// Variants load in transformers and give the runtime's logits: a uniform one as a standard
/// LlamaForCausalLM, a heterogeneous one as HubLlamaForCausalLM with the code written beside
/// its config (`fixtures/scripts/transformers_logits.py` runs them, with torch on CPU).
@Suite("Variants in transformers", .serialized)
struct PortabilityTests {
    struct Loaded: Decodable {
        let `class`: String
        let architectures: [String]
        let missing_keys: [String]
        let unexpected_keys: [String]
        let mismatched_keys: [String]
        let logits: [[Double]]
        let generated: [Int]
    }

    static func transformers(_ directory: URL, tokens: [Int], trust: Bool, generate: Int = 0) throws -> (Subprocess.Outcome, Loaded?) {
        let outcome = try Subprocess.python([Assets.repositoryRoot.appendingPathComponent("fixtures/scripts/transformers_logits.py").path,
                                             directory.path, "--tokens", tokens.map(String.init).joined(separator: ","),
                                             "--generate", "\(generate)"] + (trust ? ["--trust-remote-code"] : []),
                                            environment: ["HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"])
        return (outcome, outcome.status == 0 ? try JSONDecoder().decode(Loaded.self, from: Data(outcome.stdout.utf8)) : nil)
    }

    static func runtime(_ model: LlamaModel, _ tokens: [Int]) throws -> [[Double]] {
        let hidden = try model.forward(tokens, cache: model.makeCache(capacity: tokens.count), outputRows: tokens.count)
        let logits = model.logits(hidden, rows: tokens.count)
        let v = model.config.vocabSize
        return (0 ..< tokens.count).map { t in (0 ..< v).map { Double(logits.pointer[t * v + $0]) } }
    }

    /// max |transformers − runtime| over max |logit|, over every position.
    static func relativeDifference(_ a: [[Double]], _ b: [[Double]]) -> Double {
        let scale = b.flatMap { $0 }.map(abs).max() ?? 1
        return zip(a, b).flatMap { zip($0, $1).map { abs($0 - $1) } }.max()! / scale
    }

    static func written(_ tiny: TinyCheckpoint, in directory: TemporaryDirectory) throws -> URL {
        let url = directory.path("variant")
        try ModelDirectory.write(config: tiny.config, tensors: tiny.tensors, companions: [:], records: [:], to: url)
        return url
    }

    @Test("a heterogeneous variant (GQA, a block without attention, one without MLP, narrowing shortcuts) declares its own architecture and runs in transformers with the runtime's logits and greedy tokens")
    func heterogeneous() throws {
        let directory = try TemporaryDirectory()
        let url = try Self.written(try TinyCheckpoint.heterogeneous(seed: 4), in: directory)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: url.appendingPathComponent("config.json"))) as! [String: Any]
        #expect(config["architectures"] as? [String] == ["HubLlamaForCausalLM"] && config["model_type"] as? String == "hub_llama")
        #expect((config["auto_map"] as? [String: String])?["AutoModelForCausalLM"] == "modeling_hub_llama.HubLlamaForCausalLM")
        for file in ["configuration_hub_llama.py", "modeling_hub_llama.py"] {
            #expect(FileManager.default.fileExists(atPath: url.appendingPathComponent(file).path), "\(file)")
        }
        let model = try LlamaModel(directory: url)
        let tokens = [3, 17, 0, 31, 8, 8, 22, 5, 14, 29, 1]
        let (outcome, loaded) = try Self.transformers(url, tokens: tokens, trust: true, generate: 6)
        let got = try #require(loaded, "transformers failed: \(outcome.stderr.suffix(2000))")
        #expect(got.class == "HubLlamaForCausalLM" && got.missing_keys.isEmpty && got.unexpected_keys.isEmpty && got.mismatched_keys.isEmpty)
        #expect(Self.relativeDifference(got.logits, try Self.runtime(model, tokens)) < 1e-4)
        // Greedy decoding through generate() takes the runtime's tokens.
        let greedy = try model.generate(prompt: tokens, options: GenerationOptions(maxNewTokens: 6)).tokens
        #expect(got.generated == greedy, "transformers \(got.generated), runtime \(greedy)")

        // Without trust_remote_code transformers refuses it rather than running something else.
        let (refused, _) = try Self.transformers(url, tokens: tokens, trust: false)
        #expect(refused.status != 0 && refused.stderr.contains("trust_remote_code"))
    }

    @Test("a uniform variant is a standard LlamaForCausalLM with its own sizes, loaded without remote code; a hidden size transformers' LLaMA refuses gets the hub architecture instead")
    func uniform() throws {
        let directory = try TemporaryDirectory()
        let url = try Self.written(try TinyCheckpoint.uniform(seed: 5), in: directory)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: url.appendingPathComponent("config.json"))) as! [String: Any]
        #expect(config["architectures"] as? [String] == ["LlamaForCausalLM"] && config["auto_map"] == nil && config["hub_layers"] == nil)
        #expect(!FileManager.default.fileExists(atPath: url.appendingPathComponent("modeling_hub_llama.py").path))
        let tokens = [1, 5, 39, 0, 12, 12, 7, 30, 2]
        let (outcome, loaded) = try Self.transformers(url, tokens: tokens, trust: false)
        let got = try #require(loaded, "transformers failed: \(outcome.stderr.suffix(2000))")
        #expect(got.class == "LlamaForCausalLM" && got.missing_keys.isEmpty && got.unexpected_keys.isEmpty)
        #expect(Self.relativeDifference(got.logits, try Self.runtime(try LlamaModel(directory: url), tokens)) < 1e-4)

        // Slicing's case: uniform blocks, hidden 14 with 4 heads of 4. transformers' LLaMA
        // refuses 14 % 4 ≠ 0, so the variant names the hub architecture and still loads.
        var sliced = try TinyCheckpoint.uniform(seed: 6).config
        sliced.hiddenSize = 14
        sliced.headDim = 4
        let narrow = TinyCheckpoint(random: sliced, seed: 6)
        let narrowDirectory = try TemporaryDirectory()
        let narrowURL = try Self.written(narrow, in: narrowDirectory)
        let (narrowOutcome, narrowLoaded) = try Self.transformers(narrowURL, tokens: tokens, trust: true)
        let gotNarrow = try #require(narrowLoaded, "transformers failed: \(narrowOutcome.stderr.suffix(2000))")
        #expect(gotNarrow.class == "HubLlamaForCausalLM")
        #expect(Self.relativeDifference(gotNarrow.logits, try Self.runtime(try LlamaModel(directory: narrowURL), tokens)) < 1e-4)
    }
}
