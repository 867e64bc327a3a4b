import Checkpoint
import Foundation
import HubTestSupport
import Testing
import Transformer
@testable import Evaluator

/// Loss and per-choice log-likelihoods against transformers on the same token ids.
@Suite("Evaluator parity with transformers", .serialized)
struct EvaluatorParityTests {
    static let loaded: Result<(LlamaModel, BPETokenizer), Error> = Result {
        let directory = try ConvertedModel.directory()
        return (try LlamaModel(directory: directory),
                try BPETokenizer(huggingFaceJSON: directory.appendingPathComponent("tokenizer.json")))
    }

    static func reference() throws -> [String: Any] {
        try #require(try Assets.fixtureJSON("smollm2-135m-eval.json") as? [String: Any])
    }

    @Test("test loss equals transformers' within 1e-4 relative, over the same windows and tokens")
    func loss() throws {
        let (model, tokenizer) = try Self.loaded.get()
        let expected = try #require(try Self.reference()["loss"] as? [String: Any])
        let range = try #require(expected["articles"] as? [Int])
        let articles = try XSumCorpus.articles(in: Assets.bigbench("gem/xsum/task.json"), range: range[0] ..< range[1])
        let result = try HeldOutLoss(context: 512).evaluate(model: model, tokenizer: tokenizer, documents: articles)
        #expect(result.tokens == expected["tokens"] as? Int)
        #expect(result.windows == expected["windows"] as? Int)
        let reference = try #require((expected["cross_entropy"] as? NSNumber)?.doubleValue)
        #expect(abs(result.crossEntropy - reference) / reference < 1e-4, "\(result.crossEntropy) vs \(reference)")
    }

    @Test("every choice's log-likelihood is within 1e-3 of transformers', and the accuracy is identical")
    func choices() throws {
        let (model, tokenizer) = try Self.loaded.get()
        let expected = try #require(try Self.reference()["choices"] as? [String: Any])
        let examples = try #require(expected["examples"] as? [[String: Any]])
        let task = try BigBenchTask(name: "general_knowledge", file: Assets.bigbench("general_knowledge/task.json"))
        #expect(task.examples.count == examples.count)
        let likelihoods = try MultipleChoiceAccuracy.choiceLogLikelihoods(model: model, tokenizer: tokenizer, task: task)
        var worst = 0.0
        for (mine, theirs) in zip(likelihoods, examples) {
            let reference = try #require(theirs["loglikelihoods"] as? [NSNumber]).map(\.doubleValue)
            #expect(mine.count == reference.count)
            for (a, b) in zip(mine, reference) { worst = max(worst, abs(a - b)) }
        }
        #expect(worst < 1e-3, "max |Δ log-likelihood| \(worst)")
        let result = MultipleChoiceAccuracy.score(task: task, likelihoods: likelihoods)
        let referenceAccuracy = try #require((expected["acc"] as? NSNumber)?.doubleValue)
        #expect(result.accuracy == referenceAccuracy)
        #expect(result.accuracy > result.chance + 2 * result.accuracyStandardError, "the base model should be above chance")
    }

    @Test("a whole (tiny) suite yields a record that satisfies schemas/metrics.schema.json")
    func recordMatchesSchema() throws {
        let (model, tokenizer) = try Self.loaded.get()
        var suite = try EvaluationSuite.named("smoke")
        suite.lossDocuments = 900 ..< 902
        suite.tasks = suite.tasks.prefix(2).map { .init(name: $0.name, path: $0.path, limit: 3) }
        suite.latency = LatencyProbe(promptLengths: [16], decodeTokens: 4, repetitions: 2)
        let record = try Evaluation(suite: suite, bigbench: Assets.cacheDirectory.appendingPathComponent("bigbench"))
            .run(model: model, tokenizer: tokenizer, label: "smollm2", bytesOnDisk: 540_245_708)
        #expect(record.parameters.total == 134_515_008)
        #expect(record.parameters.embedding == 49152 * 576)
        #expect(record.tasks.count == 2)
        #expect(record.tasks.allSatisfy { $0.examples == 3 })
        #expect(record.latency?.prefill.first?.tokens == 16)
        #expect(record.hardware.logicalCores >= 1)
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(record))
        let validator = try JSONSchemaValidator(schemaAt: Assets.repositoryRoot.appendingPathComponent("schemas/metrics.schema.json"))
        #expect(validator.violations(of: json) == [])
        let decoded = try JSONDecoder().decode(MetricsRecord.self, from: JSONEncoder().encode(record))
        #expect(decoded == record)
    }

    @Test("the latency suite measures speed and memory only: no loss, no tasks, a record the schema accepts")
    func latencyOnly() throws {
        let (model, tokenizer) = try Self.loaded.get()
        var suite = try EvaluationSuite.named("latency")
        #expect(!suite.measuresLoss && suite.tasks.isEmpty && suite.latency != nil)
        suite.latency = LatencyProbe(promptLengths: [16], decodeTokens: 4, repetitions: 2)
        let record = try Evaluation(suite: suite, bigbench: Assets.cacheDirectory.appendingPathComponent("bigbench"))
            .run(model: model, tokenizer: tokenizer, label: "smollm2", bytesOnDisk: 1)
        #expect(record.suite == "latency" && record.loss == nil && record.tasks.isEmpty)
        #expect((record.latency?.decodePerToken.p50Milliseconds ?? 0) > 0 && record.peakRSSBytes > 0)
        let validator = try JSONSchemaValidator(schemaAt: Assets.repositoryRoot.appendingPathComponent("schemas/metrics.schema.json"))
        #expect(validator.violations(of: try JSONSerialization.jsonObject(with: JSONEncoder().encode(record))) == [])
    }
}
