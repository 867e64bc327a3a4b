import Checkpoint
import Foundation
import HubCore
import Transformer

/// One recovery fine-tune from files to files: a model directory's files in, a fine-tuned
/// model directory with its `finetune.json` out, checkpointed so that a killed run resumes
/// bit-identically. `hubctl finetune` and the build engine's fine-tune stage both run this.
public struct FineTuneJob: Sendable {
    public struct Teacher: Sendable {
        public let config: URL
        public let weights: URL
        public let weight: Double
        public let temperature: Double

        public init(config: URL, weights: URL, weight: Double = 0.5, temperature: Double = 2.0) {
            self.config = config
            self.weights = weights
            self.weight = weight
            self.temperature = temperature
        }
    }

    public var settings: FineTuneSettings
    public var model: ModelFiles
    public var teacher: Teacher?
    /// `$HUB_CACHE/bigbench`, where the corpus's source files are.
    public var bigbench: URL
    public var checkpointDirectory: URL
    public var checkpointEvery: Int

    public init(settings: FineTuneSettings, model: ModelFiles, teacher: Teacher?, bigbench: URL, checkpointDirectory: URL, checkpointEvery: Int = 25) {
        self.settings = settings
        self.model = model
        self.teacher = teacher
        self.bigbench = bigbench
        self.checkpointDirectory = checkpointDirectory
        self.checkpointEvery = checkpointEvery
    }

    /// The JSON form records and checkpoint identities use: sorted, indented, slashes kept.
    public static func json(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Trains and writes `output` (which must not exist), whole or not at all; the checkpoint
    /// directory is removed once it is written. `describe` hears one line about the run
    /// before it starts; `step` hears every optimizer step. Throws `FineTuneError.interrupted`
    /// when `shouldStop` asks, after checkpointing.
    public func run(output: URL, shouldStop: @escaping () -> Bool = { false }, describe: (String) -> Void = { _ in },
                    step: @escaping (FineTuner.Step) -> Void = { _ in }) throws -> FineTuneRecord {
        let tuner = try FineTuner(settings: settings)
        let tokenizer = try BPETokenizer(huggingFaceJSON: model.tokenizer, tokenizerConfig: model.tokenizerConfig)
        var parameters = try TrainableParameters(config: model.config, weights: model.weights)
        let corpus = try FineTuneCorpus(bigbench: bigbench)
        let stream = try corpus.tokens(tuner.tokensNeeded, tokenizer: tokenizer)
        describe("corpus: \(FineTuneCorpus.name), first \(stream.count) tokens; \(settings.steps) steps of \(settings.tokensPerStep) tokens"
                 + (settings.lora.map { ", LoRA rank \($0.rank) on \($0.targets.joined(separator: ","))" } ?? ", every weight"))
        var distillation: LanguageModelPass.Distillation?
        var distillationRecord: FineTuneRecord.DistillationSettings?
        if let teacher {
            let teacherWeights = try ModelWeights(config: LlamaConfig.load(from: teacher.config),
                                                  safetensors: SafetensorsFile(path: teacher.weights.path))
            try teacherWeights.requireFloat(for: "distillation's teacher")
            let teacherModel = try LlamaModel(weights: teacherWeights)
            distillation = try .init(teacher: teacherModel, weight: teacher.weight, temperature: teacher.temperature)
            distillationRecord = .init(teacherCheckpointSHA256: try SHA256Digest.ofFile(at: teacher.weights), weight: teacher.weight,
                                       temperature: teacher.temperature)
        }
        let parentSHA256 = try SHA256Digest.ofFile(at: model.weights)
        let checkpoints = try FineTuneCheckpoints(directory: checkpointDirectory, every: checkpointEvery, identity: [
            "parent_checkpoint_sha256": parentSHA256.hex, "corpus_sha256": corpus.sha256.hex, "settings": try Self.json(settings),
            "distillation": try distillationRecord.map { try Self.json($0) } ?? "none",
        ])
        let outcome = try tuner.run(&parameters, stream: stream, distillation: distillation, checkpoints: checkpoints,
                                    shouldStop: shouldStop, progress: step)
        let curve = outcome.curve
        let record = FineTuneRecord(parentCheckpointSHA256: parentSHA256, settings: settings,
                                    corpus: .init(source: FineTuneCorpus.name, sha256: corpus.sha256, tokenRange: [0, curve.last?.tokens ?? 0]),
                                    wallSeconds: outcome.wallSeconds, curve: curve, distillation: distillationRecord)
        var companions: [String: URL] = ["tokenizer.json": model.tokenizer]
        if let config = model.tokenizerConfig { companions["tokenizer_config.json"] = config }
        try ModelDirectory.write(config: parameters.config, tensors: parameters.tensors,
                                 companions: companions, records: ["finetune.json": Data(try Self.json(record).utf8)], to: output)
        try checkpoints.discard()
        return record
    }
}
