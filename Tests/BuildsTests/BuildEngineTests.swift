import Builds
import Checkpoint
import Compressor
import Evaluator
import Foundation
import HubCore
import HubTestSupport
import Testing

@Suite("Build engine: recipes, stage keys, the stage cache", .serialized)
struct BuildEngineTests {
    static let methods = CompressionMethods.all.map(\.name)

    static func decode(_ json: String) throws -> BuildRecipe {
        try BuildRecipe.decode(Data(json.utf8), knownMethods: methods)
    }

    @Test("a bad recipe is refused naming its field; a sweep expands to one variant per cell, duplicates once")
    func recipes() throws {
        let good = #"{"schema_version": 1, "base": "a/b", "name": "t/v", "compression": {"method": "width-prune", "ratio": 0.3}, "evaluation": {"suite": "smoke", "latency": false}}"#
        #expect(try Self.decode(good).compression == .init(method: "width-prune", ratio: 0.3))
        let cases: [(String, String)] = [
            (good.replacingOccurrences(of: #""ratio": 0.3"#, with: #""ratio": 1.5"#), "compression.ratio"),
            (good.replacingOccurrences(of: "width-prune", with: "magic"), "compression.method"),
            (good.replacingOccurrences(of: #""base": "a/b", "#, with: ""), "base"),
            (good.replacingOccurrences(of: #""name": "t/v""#, with: #""name": "nope""#), "name"),
            (good.replacingOccurrences(of: #""suite": "smoke""#, with: #""suite": "huge""#), "evaluation.suite"),
            (good.replacingOccurrences(of: #""latency": false"#, with: #""latency": false, "tasks": []"#), "evaluation.tasks"),
            (good.replacingOccurrences(of: #""latency": false"#, with: #""latency": false, "tasks": ["no such/task!"]"#), "evaluation.tasks"),
            (good.replacingOccurrences(of: #""ratio": 0.3"#, with: #""ratio": "a lot""#), "compression.ratio"),
        ]
        for (json, field) in cases {
            #expect { try Self.decode(json) } throws: { error in
                guard case BuildError.invalidField(let named, _) = error else { return false }
                return named == field
            }
        }
        let sweep = try Self.decode(#"{"schema_version": 1, "base": "a/b", "name": "t/v", "sweep": {"methods": ["width-prune", "depth-prune", "width-prune"], "ratios": [0.2, 0.3]}, "evaluation": {"suite": "smoke", "latency": true}}"#)
        #expect(sweep.expanded().map(\.name) == ["t/v-width-prune-20", "t/v-width-prune-30", "t/v-depth-prune-20", "t/v-depth-prune-30"])
        let budgets = try Self.decode(#"{"schema_version": 1, "base": "a/b", "name": "t/v", "sweep": {"methods": ["width-prune"], "ratios": [0.3], "budgets": [0, 50000]}, "evaluation": {"suite": "smoke", "latency": true}}"#)
        #expect(budgets.expanded().map(\.name) == ["t/v-width-prune-30", "t/v-width-prune-30-ft50k"])
        #expect(budgets.expanded().map(\.compressedName) == ["t/v-width-prune-30", "t/v-width-prune-30"])
        #expect(budgets.expanded().last?.finetune == .init(tokens: 50000))
        let tuned = good.replacingOccurrences(of: #", "evaluation""#, with: #", "finetune": {"tokens": 100, "distill": false}, "evaluation""#)
        #expect { try Self.decode(tuned) } throws: { error in
            guard case BuildError.invalidField(let named, _) = error else { return false }
            return named == "finetune.tokens"
        }
        #expect(try Self.decode(tuned.replacingOccurrences(of: "100", with: "4096")).compressedName == "t/v-compressed")
        // A fine-tune on one corpus source at its own learning rate; unknown sources and bad
        // rates are refused by field, and recipes without them encode as before.
        let news = tuned.replacingOccurrences(of: #""tokens": 100, "distill": false"#,
                                              with: #""tokens": 4096, "distill": false, "corpus_sources": ["gem/xsum"], "learning_rate": 0.0003"#)
        #expect(try Self.decode(news).finetune == .init(tokens: 4096, corpusSources: ["gem/xsum"], learningRate: 3e-4))
        for (bad, field) in [(#"["gem/nope"]"#, "finetune.corpus_sources"), ("[]", "finetune.corpus_sources")] {
            #expect { try Self.decode(news.replacingOccurrences(of: #"["gem/xsum"]"#, with: bad)) } throws: { error in
                guard case BuildError.invalidField(let named, let reason) = error else { return false }
                return named == field && (bad == "[]" || reason.contains("gem/nope"))
            }
        }
        #expect { try Self.decode(news.replacingOccurrences(of: "0.0003", with: "0")) } throws: { error in
            guard case BuildError.invalidField(let named, _) = error else { return false }
            return named == "finetune.learning_rate"
        }
        #expect(!String(decoding: try JSONEncoder().encode(Self.decode(tuned.replacingOccurrences(of: "100", with: "4096"))), as: UTF8.self)
            .contains("corpus_sources"))
        // Distillation from the base's cached top k: only with distill, and k at least 1.
        let topK = tuned.replacingOccurrences(of: #""tokens": 100, "distill": false"#, with: #""tokens": 4096, "distill": true, "teacher_top_k": 32"#)
        #expect(try Self.decode(topK).finetune == .init(tokens: 4096, distill: true, teacherTopK: 32))
        for bad in [topK.replacingOccurrences(of: "true", with: "false"), topK.replacingOccurrences(of: ": 32", with: ": 0")] {
            #expect { try Self.decode(bad) } throws: { error in
                guard case BuildError.invalidField(let named, _) = error else { return false }
                return named == "finetune.teacher_top_k"
            }
        }
        // Quantization: a bad type is refused by name; the fp32 variant (and the compressed one
        // before a fine-tune) get names of their own, a sweep's cells say their type.
        let quantized = tuned.replacingOccurrences(of: "100", with: "4096")
            .replacingOccurrences(of: #", "evaluation""#, with: #", "quantization": {"type": "q8_0"}, "evaluation""#)
        #expect(try Self.decode(quantized).unquantizedName == "t/v-fp32" && (try Self.decode(quantized).compressedName) == "t/v-compressed")
        for (bad, field) in [(#""type": "q2_k""#, "quantization.type"), (#""type": "q4_0", "head_type": "f16""#, "quantization.head_type")] {
            #expect { try Self.decode(quantized.replacingOccurrences(of: #""type": "q8_0""#, with: bad)) } throws: { error in
                guard case BuildError.invalidField(let named, _) = error else { return false }
                return named == field
            }
        }
        var quantizedSweep = budgets
        quantizedSweep.quantization = .init(type: "q4_0")
        #expect(quantizedSweep.expanded().map(\.name) == ["t/v-width-prune-30-q4_0", "t/v-width-prune-30-ft50k-q4_0"])
        #expect(quantizedSweep.expanded().map(\.unquantizedName) == ["t/v-width-prune-30", "t/v-width-prune-30-ft50k"])
        #expect(quantizedSweep.expanded().map(\.compressedName) == ["t/v-width-prune-30", "t/v-width-prune-30"])
        // Self-calibration: decoded, refused for a method that reads no calibration, absent from
        // a recipe that does not ask for it (so earlier recipes keep their stage keys).
        let selfCalibrated = good.replacingOccurrences(of: #""ratio": 0.3"#, with: #""ratio": 0.3, "self_calibration": true"#)
        #expect(try Self.decode(selfCalibrated).compression == .init(method: "width-prune", ratio: 0.3, selfCalibration: true))
        #expect { try Self.decode(selfCalibrated.replacingOccurrences(of: "width-prune", with: "prunenet")) } throws: { error in
            guard case BuildError.invalidField(let named, _) = error else { return false }
            return named == "compression.self_calibration"
        }
        #expect(!String(decoding: try JSONEncoder().encode(Self.decode(good)), as: UTF8.self).contains("self_calibration"))
        // The schema agrees: it accepts what the engine writes and names the same methods.
        let validator = try JSONSchemaValidator(schemaAt: Assets.repositoryRoot.appendingPathComponent("schemas/build-recipe.schema.json"))
        for recipe in [try Self.decode(good), try Self.decode(selfCalibrated), sweep, budgets, try Self.decode(quantized), quantizedSweep, try Self.decode(news), try Self.decode(topK)] + sweep.expanded() + budgets.expanded()
            + quantizedSweep.expanded() {
            #expect(validator.violations(of: try JSONSerialization.jsonObject(with: JSONEncoder().encode(recipe))) == [])
        }
        let schema = try JSONSerialization.jsonObject(with: Data(contentsOf: Assets.repositoryRoot.appendingPathComponent("schemas/build-recipe.schema.json"))) as! [String: Any]
        let methods = ((schema["properties"] as! [String: Any])["compression"] as! [String: Any])["properties"] as! [String: Any]
        #expect(Set((methods["method"] as! [String: Any])["enum"] as! [String]) == Set(Self.methods))
    }

    @Test("a stage's key follows its input, settings and code version; a cached stage is not run again; a failed one leaves nothing")
    func stageCache() throws {
        let directory = try TemporaryDirectory()
        let input = SHA256Digest.of(Data("weights".utf8))
        let spec = StageSpec(kind: .compress, inputSHA256: input, settings: .object(["method": .string("width-prune"), "ratio": .number(0.3)]))
        #expect(spec.key == StageSpec(kind: .compress, inputSHA256: input, settings: .object(["ratio": .number(0.3), "method": .string("width-prune")])).key)
        #expect(spec.key != StageSpec(kind: .compress, inputSHA256: input, settings: .object(["method": .string("width-prune"), "ratio": .number(0.2)])).key)
        #expect(spec.key != StageSpec(kind: .compress, inputSHA256: SHA256Digest.of(Data("other".utf8)), settings: spec.settings).key)
        #expect(spec.key != StageSpec(kind: .compress, inputSHA256: input, settings: spec.settings, codeVersion: "hubctl 9").key)

        let cache = try DirectoryStageCache(root: directory.path("stages"))
        let runner = BuildRunner(cache: cache, assetCache: directory.url)
        var runs = 0
        let (first, record) = try runner.stage(spec) { work in
            runs += 1
            try Data("out".utf8).write(to: work.appendingPathComponent("file"))
        }
        let (second, _) = try runner.stage(spec) { _ in runs += 1 }
        #expect(runs == 1 && first == second && runner.hits == 1 && runner.misses == 1)
        #expect(try String(contentsOf: second.appendingPathComponent("file"), encoding: .utf8) == "out")
        #expect(record.key == spec.key && first.lastPathComponent == spec.key.hex)

        let failing = StageSpec(kind: .evaluate, inputSHA256: input, settings: .object([:]))
        #expect(throws: BuildError.self) {
            try runner.stage(failing) { work in
                try Data("half".utf8).write(to: work.appendingPathComponent("file"))
                throw BuildError.missingInput("on purpose")
            }
        }
        #expect(try cache.lookup(failing.key) == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path("stages/.work").path).isEmpty)
    }

    @Test("a self-calibrated compress stage samples its calibration from the model: recorded in the recipe, keyed apart from the text-calibrated stage")
    func selfCalibratedStage() throws {
        let directory = try TemporaryDirectory()
        let assets = try Assets.bigbench("gem/xsum/task.json").deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let runner = BuildRunner(cache: try DirectoryStageCache(root: directory.path("stages")), assetCache: assets)
        struct Stop: Error {}
        var keys: [SHA256Digest] = []
        for selfCalibration in [true, false] {
            let recipe = BuildRecipe(base: "smollm2/base", name: "team/g10",
                                     compression: .init(method: "width-prune-global", ratio: 0.1, calibrationTokens: 256, selfCalibration: selfCalibration),
                                     evaluation: .init(suite: "smoke", latency: false))
            // Only the compress stage runs; the evaluation is not what this test is about.
            #expect(throws: Stop.self) {
                _ = try runner.build(recipe, base: ModelFiles(directory: ConvertedModel.directory())) { job in
                    guard job.spec.kind == .compress else { throw Stop() }
                    let (output, record) = try runner.run(job)
                    keys.append(record.spec.key)
                    let written = try JSONDecoder().decode(CompressionRecipe.self, from: Data(contentsOf: output.appendingPathComponent("recipe.json")))
                    let source = try #require(written.calibration?.source)
                    #expect(source.hasPrefix("model-sampled") == selfCalibration, "\(source)")
                    #expect(written.calibration?.tokens == 256)
                    return (output, record)
                }
            }
        }
        #expect(keys.count == 2 && keys[0] != keys[1])
    }

    @Test("a build on the real model compresses and evaluates; built again, both stages come from the cache")
    func realBuild() throws {
        let directory = try TemporaryDirectory()
        let model = try ConvertedModel.directory()
        let assets = try Assets.bigbench("gem/xsum/task.json").deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let runner = BuildRunner(cache: try DirectoryStageCache(root: directory.path("stages")), assetCache: assets)
        let recipe = BuildRecipe(base: "smollm2/base", name: "team/w10", compression: .init(method: "weight-prune", ratio: 0.1),
                                 evaluation: .init(suite: "smoke", latency: false))
        let base = ModelFiles(directory: model)
        let built = try runner.build(recipe, base: base)
        #expect(built.stages.map(\.spec.kind) == [.compress, .evaluate])
        #expect(FileManager.default.fileExists(atPath: built.variant.appendingPathComponent("recipe.json").path))
        #expect(FileManager.default.fileExists(atPath: built.variant.appendingPathComponent("tokenizer.json").path))
        let loss = try #require(built.metrics.loss?.crossEntropy)
        #expect(loss > 3 && loss < 20 && built.metrics.latency == nil)
        let again = try runner.build(recipe, base: base)
        #expect(runner.hits == 2 && runner.misses == 2)
        #expect(again.variant == built.variant && again.metrics == built.metrics)
    }
}
