@testable import Builds
import Evaluator
import Foundation
import HubCore
import HubTestSupport
@testable import Registry
import Testing

@Suite("hubctl build run", .serialized)
struct BuildCommandTests {
    @Test("a built variant carries build.json, not the stage cache's own stage.json")
    func provenanceFiles() throws {
        let fixture = try HubFamilyFixture()
        let registry = fixture.registry
        let baseModel = try TinyCheckpoint.uniform(seed: 2)
        var narrow = baseModel.config
        narrow.intermediateSize = 8
        let model = TinyCheckpoint(random: narrow, seed: 41)
        let stageOutput = fixture.directory.path("stage-output")
        try model.write(to: stageOutput)
        let baseWeights = try registry.store.files(of: fixture.base.id).first { $0.path == "model.safetensors" }!.sha256
        let parameters = ParameterCount(tensors: model.tensors.map { ($0.key, $0.value.shape) }).total
        try JSONSerialization.data(withJSONObject: HubFamilyFixture.recipe("width-prune", base: baseModel, parameters: parameters, input: baseWeights))
            .write(to: stageOutput.appendingPathComponent("recipe.json"))
        let spec = StageSpec(kind: .compress, inputSHA256: baseWeights, settings: .object(["method": .string("width-prune"), "ratio": .number(0.3)]))
        let stage = StageRecord(spec: spec, key: spec.key, seconds: 1, createdAt: "2026-12-01T00:00:00Z")
        try JSONEncoder().encode(stage).write(to: stageOutput.appendingPathComponent("stage.json"))
        let metrics = try HubFamilyFixture.metrics(model: "team/built", cpu: HubFamilyFixture.localCPU, decode: 10, prefill: [32: 20], rss: 1,
                                                   loss: 3.5, accuracy: 0.4)
        let output = BuildOutput(recipe: BuildRecipe(base: "team/base", name: "team/built", compression: .init(method: "width-prune", ratio: 0.3)),
                                 intermediates: [], variant: stageOutput, metrics: metrics, stages: [stage])
        let revision = try registry.registerBuild(output, author: "test")
        let paths = try registry.store.files(of: revision.id).map(\.path)
        #expect(paths.contains("build.json") && paths.contains("recipe.json") && paths.contains("model.safetensors"), "\(paths)")
        #expect(!paths.contains("stage.json"), "\(paths)")
    }

    @Test("a fine-tuning cell's compressed parent, already built and measured as the budget-0 cell, is that revision: not committed again unmeasured")
    func measuredParentKept() throws {
        let fixture = try HubFamilyFixture()
        let registry = fixture.registry
        let baseModel = try TinyCheckpoint.uniform(seed: 2)
        let baseWeights = try registry.store.files(of: fixture.base.id).first { $0.path == "model.safetensors" }!.sha256
        func stageOutput(_ name: String, seed: UInt64, record: (file: String, json: (Int) -> [String: Any])) throws -> URL {
            var narrow = baseModel.config
            narrow.intermediateSize = 8
            let folder = fixture.directory.path(name)
            try HubFamilyFixture.write(TinyCheckpoint(random: narrow, seed: seed), to: folder, record: record)
            return folder
        }
        let spec = StageSpec(kind: .compress, inputSHA256: baseWeights, settings: .object(["method": .string("width-prune"), "ratio": .number(0.3)]))
        let stage = StageRecord(spec: spec, key: spec.key, seconds: 1, createdAt: "2026-12-01T00:00:00Z")
        let metrics = try HubFamilyFixture.metrics(model: "laws/cell", cpu: HubFamilyFixture.localCPU, decode: 10, prefill: [32: 20], rss: 1,
                                                   loss: 3.5, accuracy: 0.4)
        let recipe = ("recipe.json", { HubFamilyFixture.recipe("width-prune", base: baseModel, parameters: $0, input: baseWeights) })
        // The budget-0 cell: built, registered with build.json and measured.
        let compressed = try stageOutput("compressed", seed: 41, record: recipe)
        let cell = try registry.registerBuild(BuildOutput(recipe: BuildRecipe(base: "team/base", name: "laws/cell", compression: .init(method: "width-prune", ratio: 0.3)),
                                                          intermediates: [], variant: compressed, metrics: metrics, stages: [stage]), author: "test")
        let cellWeights = try registry.store.files(of: cell.id).first { $0.path == "model.safetensors" }!.sha256
        // The fine-tuning cell from the same compress stage output.
        func tune(_ parent: URL, as name: String) throws -> Revision {
            let weights = try SHA256Digest.ofFile(at: parent.appendingPathComponent("model.safetensors"))
            let tuned = try stageOutput("tuned-\(name.split(separator: "/").last!)", seed: 42,
                                        record: ("finetune.json", { _ in HubFamilyFixture.fineTune(input: weights, teacher: baseWeights) }))
            let recipe = BuildRecipe(base: "team/base", name: name, compression: .init(method: "width-prune", ratio: 0.3))
            return try registry.registerBuild(BuildOutput(recipe: recipe, intermediates: [("laws/cell", parent)], variant: tuned,
                                                          metrics: metrics, stages: [stage]), author: "test")
        }
        let tuned = try tune(compressed, as: "laws/cell-ft4k")
        #expect(try registry.store.resolve(RepositoryName("laws/cell"), revision: "main")?.id == cell.id)
        #expect(try registry.store.lineage(of: tuned.id)?.parentRevisionID == cell.id)
        #expect(try registry.store.metrics(of: cell.id).count == 1)
        #expect(try registry.family(of: RepositoryName("team/base")).filter { $0.repository == "laws/cell" }.count == 1)

        // Other weights under the cell's name are a new revision (and supersede it).
        let other = try stageOutput("other", seed: 43, record: recipe)
        #expect(try SHA256Digest.ofFile(at: other.appendingPathComponent("model.safetensors")) != cellWeights)
        let second = try tune(other, as: "laws/cell-ft8k")
        let moved = try #require(try registry.store.resolve(RepositoryName("laws/cell"), revision: "main"))
        let secondParent = try registry.store.lineage(of: second.id)?.parentRevisionID
        #expect(moved.id != cell.id && secondParent == moved.id)
    }

    @Test("a recipe builds, registers the variant with its lineage and metrics, and building it again registers nothing new")
    func buildAndRegister() throws {
        let directory = try TemporaryDirectory()
        let dataDir = directory.path("hub").path
        let imported = try HubctlBinary.run(["import", try Assets.modelGGUF().path, "smollm2/base", "--data-dir", dataDir])
        #expect(imported.status == 0, "\(imported.stderr)")
        let recipe = directory.path("recipe.json")
        try Data(#"{"schema_version": 1, "base": "smollm2/base", "name": "team/w10", "compression": {"method": "weight-prune", "ratio": 0.1}, "evaluation": {"suite": "smoke", "latency": false, "tasks": ["general_knowledge"]}}"#.utf8)
            .write(to: recipe)
        let first = try HubctlBinary.run(["build", "run", recipe.path, "--json", "--data-dir", dataDir])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stderr.contains("stages: 2 run, 0 reused"))
        let registry = try HubRegistry(dataDirectory: URL(fileURLWithPath: dataDir))
        let card = try registry.card(RepositoryName("team/w10"))
        #expect(card.kind == .compressed && card.lineage?.recipe["method"]?.stringValue == "weight-prune")
        #expect(card.metrics.count == 1 && card.metrics[0].crossEntropy != nil)
        // The recipe's one task, not the suite's four (a quicker check; these tests build many).
        let stageMetrics = try #require(FileManager.default.enumerator(atPath: dataDir)?.compactMap { $0 as? String }.first { $0.hasSuffix("metrics.json") })
        let scored = try JSONDecoder().decode(MetricsRecord.self, from: Data(contentsOf: URL(fileURLWithPath: dataDir).appendingPathComponent(stageMetrics)))
        #expect(scored.tasks.map(\.task) == ["general_knowledge"], "\(scored.tasks)")
        let again = try HubctlBinary.run(["build", "run", recipe.path, "--data-dir", dataDir])
        #expect(again.status == 0 && again.stderr.contains("stages: 0 run, 2 reused"))
        let after = try registry.card(RepositoryName("team/w10"))
        #expect(after.revision == card.revision && after.metrics.count == 1)
        let audit = try HubctlBinary.run(["lineage", "team/w10", "--audit", "--data-dir", dataDir])
        #expect(audit.status == 0, "\(audit.stdout)\(audit.stderr)")

        // The same compression fine-tuned on two steps with distillation: the compress stage
        // comes from the cache; the compressed variant is the fine-tuned one's lineage parent.
        try Data(#"{"schema_version": 1, "base": "smollm2/base", "name": "team/w10-ft", "compression": {"method": "weight-prune", "ratio": 0.1}, "finetune": {"tokens": 2048, "distill": true}, "evaluation": {"suite": "smoke", "latency": false, "tasks": ["general_knowledge"]}}"#.utf8)
            .write(to: recipe)
        let tuned = try HubctlBinary.run(["build", "run", recipe.path, "--data-dir", dataDir])
        #expect(tuned.status == 0, "\(tuned.stderr)")
        #expect(tuned.stderr.contains("stages: 2 run, 1 reused"))
        let chain = try registry.lineage(of: RepositoryName("team/w10-ft"))
        #expect(chain.map(\.repository) == ["team/w10-ft", "team/w10-ft-compressed", "smollm2/base"])
        #expect(chain[0].record?["loss"]?.stringValue == "distillation" && chain[1].record?["method"]?.stringValue == "weight-prune")
        #expect(try registry.card(RepositoryName("team/w10-ft")).metrics.count == 1)
        let tunedAudit = try HubctlBinary.run(["lineage", "team/w10-ft", "--audit", "--data-dir", dataDir])
        #expect(tunedAudit.status == 0 && tunedAudit.stdout.contains("distillation teacher"), "\(tunedAudit.stdout)\(tunedAudit.stderr)")

        // Fine-tuned on news alone at another learning rate: a stage of its own (the compress
        // stage still comes from the cache), and its lineage record says both.
        try Data(#"{"schema_version": 1, "base": "smollm2/base", "name": "team/w10-news", "compression": {"method": "weight-prune", "ratio": 0.1}, "finetune": {"tokens": 2048, "distill": false, "corpus_sources": ["gem/xsum"], "learning_rate": 0.0003}, "evaluation": {"suite": "smoke", "latency": false, "tasks": ["general_knowledge"]}}"#.utf8)
            .write(to: recipe)
        let news = try HubctlBinary.run(["build", "run", recipe.path, "--data-dir", dataDir])
        #expect(news.status == 0, "\(news.stderr)")
        #expect(news.stderr.contains("stages: 2 run, 1 reused"), "\(news.stderr)")
        let newsRecord = try #require(try registry.lineage(of: RepositoryName("team/w10-news")).first?.record)
        #expect(newsRecord["corpus"]?["sources"] == .array([.string("gem/xsum")]), "\(newsRecord)")
        #expect(newsRecord["settings"]?["peak_learning_rate"] == .number(3e-4), "\(newsRecord)")

        // Distilled from the base's cached top 8: the teacher runs once, its logits are kept
        // beside the stage checkpoints, and the lineage record says top_k.
        try Data(#"{"schema_version": 1, "base": "smollm2/base", "name": "team/w10-kd8", "compression": {"method": "weight-prune", "ratio": 0.1}, "finetune": {"tokens": 2048, "distill": true, "teacher_top_k": 8}, "evaluation": {"suite": "smoke", "latency": false, "tasks": ["general_knowledge"]}}"#.utf8)
            .write(to: recipe)
        let topK = try HubctlBinary.run(["build", "run", recipe.path, "--data-dir", dataDir])
        #expect(topK.status == 0, "\(topK.stderr)")
        #expect(topK.stderr.contains("stages: 2 run, 1 reused"), "\(topK.stderr)")
        let topKRecord = try #require(try registry.lineage(of: RepositoryName("team/w10-kd8")).first?.record)
        #expect(topKRecord["distillation"]?["top_k"] == .number(8), "\(topKRecord)")
        let cached = FileManager.default.enumerator(atPath: dataDir)?.compactMap { $0 as? String }.filter { $0.hasSuffix("-top8-T2.0.cache") } ?? []
        #expect(cached.count == 1 && cached[0].contains(".work/teacher-logits/"), "\(cached)")

        // The same fine-tune quantized to Q8_0: compression and fine-tune come from the cache,
        // and the chain is base → compressed → fine-tuned (fp32) → quantized, audited whole.
        try Data(#"{"schema_version": 1, "base": "smollm2/base", "name": "team/q8", "compression": {"method": "weight-prune", "ratio": 0.1}, "finetune": {"tokens": 2048, "distill": true}, "quantization": {"type": "q8_0"}, "evaluation": {"suite": "smoke", "latency": false, "tasks": ["general_knowledge"]}}"#.utf8)
            .write(to: recipe)
        let quantized = try HubctlBinary.run(["build", "run", recipe.path, "--data-dir", dataDir])
        #expect(quantized.status == 0, "\(quantized.stderr)")
        #expect(quantized.stderr.contains("stages: 2 run, 2 reused"), "\(quantized.stderr)")
        let blocks = try registry.lineage(of: RepositoryName("team/q8"))
        #expect(blocks.map(\.repository) == ["team/q8", "team/q8-fp32", "team/q8-compressed", "smollm2/base"])
        #expect(blocks[0].record?["type"]?.stringValue == "q8_0" && blocks[1].record?["loss"]?.stringValue == "distillation")
        #expect(blocks[0].parameters == blocks[1].parameters && blocks[1].files.first { $0.path == "model.safetensors" }?.sha256
            == chain[0].files.first { $0.path == "model.safetensors" }?.sha256)
        // Q8_0 costs next to nothing: the held-out loss within 1% of the fp32 fine-tune's.
        let fp32Loss = try #require(try registry.card(RepositoryName("team/w10-ft")).metrics.first?.crossEntropy)
        let q8Loss = try #require(try registry.card(RepositoryName("team/q8")).metrics.first?.crossEntropy)
        #expect(abs(q8Loss - fp32Loss) / fp32Loss < 0.01, "q8_0 \(q8Loss) against fp32 \(fp32Loss)")
        let quantizedAudit = try HubctlBinary.run(["lineage", "team/q8", "--audit", "--data-dir", dataDir])
        #expect(quantizedAudit.status == 0, "\(quantizedAudit.stdout)\(quantizedAudit.stderr)")

        // Stages as child processes (hubctl stage run): the same outputs land in the same
        // cache, so an in-process run afterwards reuses both.
        try Data(#"{"schema_version": 1, "base": "smollm2/base", "name": "team/w15", "compression": {"method": "weight-prune", "ratio": 0.15}, "evaluation": {"suite": "smoke", "latency": false, "tasks": ["general_knowledge"]}}"#.utf8)
            .write(to: recipe)
        let children = try HubctlBinary.run(["build", "run", recipe.path, "--stage-processes", "--data-dir", dataDir])
        #expect(children.status == 0 && children.stderr.contains("compress") && children.stderr.contains("ran in"), "\(children.stderr)")
        #expect(try registry.card(RepositoryName("team/w15")).metrics.count == 1)
        let reused = try HubctlBinary.run(["build", "run", recipe.path, "--data-dir", dataDir])
        #expect(reused.status == 0 && reused.stderr.contains("stages: 0 run, 2 reused"))

        // A bad recipe: refused naming the field, nothing registered.
        try Data(#"{"schema_version": 1, "base": "smollm2/base", "name": "team/bad", "compression": {"method": "weight-prune", "ratio": 0}, "evaluation": {"suite": "smoke", "latency": false, "tasks": ["general_knowledge"]}}"#.utf8)
            .write(to: recipe)
        let bad = try HubctlBinary.run(["build", "run", recipe.path, "--data-dir", dataDir])
        #expect(bad.status == 1 && bad.stderr.contains("compression.ratio"))
        #expect(try registry.store.repository(RepositoryName("team/bad")) == nil)
    }
}
