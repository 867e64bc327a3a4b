import Checkpoint
import Foundation
import HubCore
import HubTestSupport
import Testing
import Transformer
@testable import Compressor

@Suite("Compressing to a ratio", .serialized)
struct CompressorTests {
    static func files() throws -> (config: URL, weights: URL, companions: [String: URL]) {
        let directory = try ConvertedModel.directory()
        return (directory.appendingPathComponent("config.json"), directory.appendingPathComponent("model.safetensors"),
                ["tokenizer.json": directory.appendingPathComponent("tokenizer.json")])
    }

    static func calibration(articles: Range<Int> = 0 ..< 8) throws -> CalibrationData {
        let directory = try ConvertedModel.directory()
        let tokenizer = try BPETokenizer(huggingFaceJSON: directory.appendingPathComponent("tokenizer.json"))
        let task = try JSONSerialization.jsonObject(with: Data(contentsOf: Assets.bigbench("gem/xsum/task.json"))) as! [String: Any]
        let text = (task["examples"] as! [[String: Any]])[articles].compactMap { $0["input"] as? String }.joined(separator: "\n\n")
        return try CalibrationData(text: text, source: "xsum \(articles.lowerBound)..<\(articles.upperBound)", tokenizer: tokenizer,
                                   maxTokens: 1024, minimumTokens: 512)
    }

    @Test("every method hits the requested ratio within half a point, and the variant runs", arguments: CompressionMethods.all.map(\.name))
    func hitsRatio(method: String) throws {
        let (config, weights, companions) = try Self.files()
        let directory = try TemporaryDirectory()
        let output = directory.path("variant")
        let recipe = try Compressor(method: CompressionMethods.named(method)).compress(
            config: config, weights: weights, companions: companions, ratio: 0.2, calibration: Self.calibration(), output: output,
            probeTokens: 256)
        #expect(abs(recipe.achievedRatio - 0.2) <= 0.005)
        #expect(recipe.baseParameters == 134_515_008)
        #expect(recipe.method == method)
        #expect(recipe.baseCheckpointSHA256 == (try SHA256Digest.ofFile(at: weights)))
        #expect((recipe.calibration != nil) == (try CompressionMethods.named(method).needsCalibration))
        #expect(recipe.achievedNonEmbeddingRatio > 0 && recipe.achievedNonEmbeddingRatio < 1)
        // Every method cuts only inside the blocks (slicegpt keeps the tied embedding whole).
        #expect(recipe.achievedNonEmbeddingRatio > recipe.achievedRatio)

        let model = try LlamaModel(directory: output)
        let counted = try SafetensorsFile(path: output.appendingPathComponent("model.safetensors").path).entries.reduce(0) { $0 + $1.elementCount }
        #expect(counted == recipe.variantParameters)
        let result = try model.generate(prompt: [504, 3575, 282], options: GenerationOptions(maxNewTokens: 4))
        #expect(result.tokens.count == 4)
        let files = try FileManager.default.contentsOfDirectory(atPath: output.path).sorted()
        // A variant transformers' LLaMA cannot describe ships the code that runs it (PortableConfig).
        let written = try LlamaConfig.load(from: output.appendingPathComponent("config.json"))
        let code = written.architectures == ["HubLlamaForCausalLM"] ? ["configuration_hub_llama.py", "modeling_hub_llama.py"] : []
        #expect(written.architectures == ["HubLlamaForCausalLM"] ? written.hubLayers != nil && written.autoMap != nil : written.hubLayers == nil)
        #expect(files == (["config.json", "model.safetensors", "recipe.json", "tokenizer.json"] + code).sorted())
        let recipeJSON = try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("recipe.json")))
        let validator = try JSONSchemaValidator(schemaAt: Assets.repositoryRoot.appendingPathComponent("schemas/recipe.schema.json"))
        #expect(validator.violations(of: recipeJSON) == [])
    }

    @Test("bad requests are refused before anything is written")
    func badRequests() throws {
        let (config, weights, companions) = try Self.files()
        let directory = try TemporaryDirectory()
        let output = directory.path("variant")
        #expect(throws: CompressionError.unknownMethod("magic", known: CompressionMethods.all.map(\.name))) {
            try CompressionMethods.named("magic")
        }
        let method = try CompressionMethods.named("width-prune")
        for ratio in [0.0, 1.0, -0.2, 1.3] {
            #expect(throws: CompressionRatioError.self) {
                try Compressor(method: method).compress(config: config, weights: weights, companions: companions, ratio: ratio,
                                                        calibration: Self.calibration(), output: output)
            }
        }
        #expect(throws: CompressionError.calibrationMissing(method: "width-prune")) {
            try Compressor(method: method).compress(config: config, weights: weights, companions: companions, ratio: 0.3,
                                                    calibration: nil, output: output)
        }
        do {
            _ = try Compressor(method: method).compress(config: config, weights: weights, companions: companions, ratio: 0.9,
                                                        calibration: Self.calibration(), output: output)
            Issue.record("r = 0.9 cannot be reached without pruning the embedding")
        } catch let error as CompressionError {
            guard case .ratioUnreachable(_, let maximum, _) = error else { Issue.record("\(error)"); return }
            #expect(abs(maximum - 0.789) < 0.01)
        }
        // SliceGPT keeps this model's tied embedding and head whole: its bound is said before
        // the calibration pass, with the reason, and nothing is written.
        do {
            _ = try Compressor(method: CompressionMethods.named("slicegpt-shared")).compress(
                config: config, weights: weights, companions: companions, ratio: 0.9, calibration: Self.calibration(), output: output)
            Issue.record("r = 0.9 cannot be reached while the tied embedding stays whole")
        } catch let error as CompressionError {
            guard case .ratioUnreachable(_, let maximum, let reason) = error else { Issue.record("\(error)"); return }
            #expect(maximum > 0.7 && maximum < 0.789 && reason.contains("tied embedding and head"), "\(maximum) \(reason)")
        }
        #expect(!FileManager.default.fileExists(atPath: output.path))
        let tokenizer = try BPETokenizer(huggingFaceJSON: ConvertedModel.directory().appendingPathComponent("tokenizer.json"))
        #expect(throws: CompressionError.calibrationTooShort(tokens: 3, needed: 1024)) {
            try CalibrationData(text: "Too short.", source: "x", tokenizer: tokenizer)
        }
        #expect(throws: CompressionError.calibrationTooShort(tokens: 0, needed: 1024)) {
            try CalibrationData(text: "", source: "x", tokenizer: tokenizer)
        }
        #expect(try directory.contents().isEmpty)
    }

    @Test("an architecture other than llama is refused, and nothing is written")
    func unsupportedArchitecture() throws {
        let (config, weights, companions) = try Self.files()
        let directory = try TemporaryDirectory()
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: config)) as! [String: Any]
        json["model_type"] = "gemma3"
        let otherConfig = directory.path("config.json")
        try JSONSerialization.data(withJSONObject: json).write(to: otherConfig)
        #expect(throws: CompressionError.self) {
            try Compressor(method: WeightOnlyWidthPruning()).compress(config: otherConfig, weights: weights, companions: companions,
                                                                      ratio: 0.3, calibration: nil, output: directory.path("out"))
        }
        #expect(try directory.contents() == ["config.json"])
    }
}
