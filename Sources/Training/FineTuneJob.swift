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
        /// Distil from the teacher's top k logits, cached in `cacheDirectory` under a name made
        /// of the teacher's and the tokens' digests (so every run reading the same tokens shares
        /// it); nil: all logits, the teacher run with each batch.
        public let topK: Int?
        public let cacheDirectory: URL?

        public init(config: URL, weights: URL, weight: Double = 0.5, temperature: Double = 2.0, topK: Int? = nil, cacheDirectory: URL? = nil) {
            self.config = config
            self.weights = weights
            self.weight = weight
            self.temperature = temperature
            self.topK = topK
            self.cacheDirectory = cacheDirectory
        }
    }

    public var settings: FineTuneSettings
    public var model: ModelFiles
    public var teacher: Teacher?
    /// `$HUB_CACHE/bigbench`, where the corpus's source files are.
    public var bigbench: URL
    public var checkpointDirectory: URL
    public var checkpointEvery: Int
    /// Read only these corpus sources (short names, e.g. "gem/xsum"); nil: every source.
    public var corpusSources: [String]?

    public init(settings: FineTuneSettings, model: ModelFiles, teacher: Teacher?, bigbench: URL, checkpointDirectory: URL, checkpointEvery: Int = 25) {
        self.settings = settings
        self.model = model
        self.teacher = teacher
        self.bigbench = bigbench
        self.checkpointDirectory = checkpointDirectory
        self.checkpointEvery = checkpointEvery
    }

    /// Where a top-k cache goes when no directory is named: beside the checkpoints (not in
    /// them: a checkpoint clears its directory of everything but itself).
    static func defaultTeacherCache(beside checkpoints: URL) -> URL {
        checkpoints.deletingLastPathComponent().appendingPathComponent("teacher-logits")
    }

    /// The teacher's top-k cache for this run's sequences: read from `directory` when a run
    /// before built it for the same teacher and tokens, else built (the teacher runs once over
    /// every sequence) and written there atomically.
    static func teacherCache(teacherSHA256: SHA256Digest, k: Int, temperature: Double, stream: [Int], settings: FineTuneSettings, directory: URL,
                             model: () throws -> LlamaModel, describe: (String) -> Void, shouldStop: () -> Bool = { false },
                             progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> TeacherLogitCache {
        let length = settings.sequenceLength, count = settings.steps * settings.tokensPerStep / length
        let sequences = TeacherLogitCache.sequences(of: stream, count: count, length: length)
        let tokens = TeacherLogitCache.digest(sequences.joined().map { Int32($0) })
        let file = directory.appendingPathComponent(
            "teacher-\(teacherSHA256.hex.prefix(16))-tokens-\(tokens.hex.prefix(16))-top\(k)-T\(temperature).cache")
        func described(_ cache: TeacherLogitCache) -> TeacherLogitCache {
            describe(String(format: "teacher: its top %d hold %.1f%% of its mass at T = %g on average", k, 100 * cache.meanTopMass, temperature))
            return cache
        }
        // A missing file, or one of an older format, is built anew, not trusted.
        if let cache = try? TeacherLogitCache.load(from: file),
           cache.header.k == k, cache.matches(teacherSHA256: teacherSHA256, temperature: temperature, stream: stream, sequences: count, length: length) {
            describe("teacher: top \(k) logits of \(cache.positions) positions from \(file.path)")
            return described(cache)
        }
        describe("teacher: computing its top \(k) logits over \(count) sequences once, into \(file.path)")
        let start = Date()
        let cache = try TeacherLogitCache.build(teacher: model(), teacherSHA256: teacherSHA256, sequences: sequences, k: k,
                                                temperature: temperature, progress: progress, shouldStop: shouldStop)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try cache.write(to: file)
        describe(String(format: "teacher: cached in %.0f s", Date().timeIntervalSince(start)))
        return described(cache)
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
    /// before it starts; `teacherProgress` hears the sequences the teacher has done while it
    /// builds a top-k cache; `step` hears every optimizer step. Throws
    /// `FineTuneError.interrupted` when `shouldStop` asks: after checkpointing, or at step 0,
    /// with nothing kept, while the teacher builds its cache.
    public func run(output: URL, shouldStop: @escaping () -> Bool = { false },
                    teacherProgress: (_ done: Int, _ total: Int) -> Void = { _, _ in }, describe: (String) -> Void = { _ in },
                    step: @escaping (FineTuner.Step) -> Void = { _ in }) throws -> FineTuneRecord {
        let tuner = try FineTuner(settings: settings)
        let tokenizer = try BPETokenizer(huggingFaceJSON: model.tokenizer, tokenizerConfig: model.tokenizerConfig)
        var parameters = try TrainableParameters(config: model.config, weights: model.weights)
        let corpus = try FineTuneCorpus(bigbench: bigbench)
        let sources = try FineTuneCorpus.selection(corpusSources)
        let stream = try corpus.tokens(tuner.tokensNeeded, tokenizer: tokenizer, sources: sources)
        describe("corpus: \(FineTuneCorpus.name)\(FineTuneCorpus.restriction(sources)), first \(stream.count) tokens;"
                 + " \(settings.steps) steps of \(settings.tokensPerStep) tokens"
                 + (settings.lora.map { ", LoRA rank \($0.rank) on \($0.targets.joined(separator: ","))" } ?? ", every weight"))
        var distillation: LanguageModelPass.Distillation?
        var distillationRecord: FineTuneRecord.DistillationSettings?
        if let teacher {
            let teacherSHA256 = try SHA256Digest.ofFile(at: teacher.weights)
            func teacherModel() throws -> LlamaModel {
                let teacherWeights = try ModelWeights(config: LlamaConfig.load(from: teacher.config),
                                                      safetensors: SafetensorsFile(path: teacher.weights.path))
                try teacherWeights.requireFloat(for: "distillation's teacher")
                return try LlamaModel(weights: teacherWeights)
            }
            if let k = teacher.topK {
                let cache = try Self.teacherCache(teacherSHA256: teacherSHA256, k: k, temperature: teacher.temperature, stream: stream, settings: settings,
                                                  directory: teacher.cacheDirectory ?? Self.defaultTeacherCache(beside: checkpointDirectory),
                                                  model: teacherModel, describe: describe, shouldStop: shouldStop,
                                                  progress: teacherProgress)
                distillation = try .init(cache: cache, weight: teacher.weight)
            } else {
                distillation = try .init(teacher: teacherModel(), weight: teacher.weight, temperature: teacher.temperature)
            }
            distillationRecord = .init(teacherCheckpointSHA256: teacherSHA256, weight: teacher.weight, temperature: teacher.temperature,
                                       topK: teacher.topK)
        }
        let parentSHA256 = try SHA256Digest.ofFile(at: model.weights)
        var identity = [
            "parent_checkpoint_sha256": parentSHA256.hex, "corpus_sha256": corpus.sha256.hex, "settings": try Self.json(settings),
            "distillation": try distillationRecord.map { try Self.json($0) } ?? "none",
        ]
        // Only when restricted, so that checkpoints of every-source runs keep their identity.
        if let sources { identity["corpus_sources"] = sources.joined(separator: ",") }
        let checkpoints = try FineTuneCheckpoints(directory: checkpointDirectory, every: checkpointEvery, identity: identity)
        let outcome = try tuner.run(&parameters, stream: stream, distillation: distillation, checkpoints: checkpoints,
                                    shouldStop: shouldStop, progress: step)
        let curve = outcome.curve
        let record = FineTuneRecord(parentCheckpointSHA256: parentSHA256, settings: settings,
                                    corpus: .init(source: FineTuneCorpus.name, sha256: corpus.sha256, tokenRange: [0, curve.last?.tokens ?? 0],
                                                  sources: sources),
                                    wallSeconds: outcome.wallSeconds, curve: curve, distillation: distillationRecord)
        var companions: [String: URL] = ["tokenizer.json": model.tokenizer]
        if let config = model.tokenizerConfig { companions["tokenizer_config.json"] = config }
        try ModelDirectory.write(config: parameters.config, tensors: parameters.tensors,
                                 companions: companions, records: ["finetune.json": Data(try Self.json(record).utf8)], to: output)
        try checkpoints.discard()
        return record
    }
}
