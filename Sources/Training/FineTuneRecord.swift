import Foundation
import HubCore

/// How a fine-tuned variant was made, for lineage: its JSON form is
/// `schemas/finetune.schema.json`, written as finetune.json beside the weights.
public struct FineTuneRecord: Codable, Sendable, Equatable {
    public struct Corpus: Codable, Sendable, Equatable {
        public let source: String
        public let sha256: SHA256Digest
        /// The tokens of the corpus's token stream the run read: [first, end).
        public let tokenRange: [Int]
        /// The sources the stream was restricted to (short names); nil: every source.
        public let sources: [String]?

        public init(source: String, sha256: SHA256Digest, tokenRange: [Int], sources: [String]? = nil) {
            self.source = source
            self.sha256 = sha256
            self.tokenRange = tokenRange
            self.sources = sources
        }
    }

    public var schemaVersion = 1
    public let parentCheckpointSHA256: SHA256Digest
    /// "full" (every parameter trained) or "lora" (adapters trained, then merged; their
    /// rank, alpha and targets are in `settings.lora`).
    public let method: String
    /// "cross-entropy", or "distillation" (with its weight and temperature).
    public let loss: String
    public let distillation: DistillationSettings?
    public let settings: FineTuneSettings
    public let schedule: LearningRateSchedule
    public let steps: Int
    public let tokens: Int
    public let corpus: Corpus
    public let codeVersion: String
    public let wallSeconds: Double
    public let curve: [FineTuner.Step]

    /// The teacher (by its checkpoint's sha256) and how its soft targets were mixed in.
    public struct DistillationSettings: Codable, Sendable, Equatable {
        public let teacherCheckpointSHA256: SHA256Digest
        public let weight: Double
        public let temperature: Double
        /// The teacher's logits were its top k, cached (`TeacherLogitCache`); absent: all of
        /// them, computed with each batch.
        public let topK: Int?

        public init(teacherCheckpointSHA256: SHA256Digest, weight: Double, temperature: Double, topK: Int? = nil) {
            self.teacherCheckpointSHA256 = teacherCheckpointSHA256
            self.weight = weight
            self.temperature = temperature
            self.topK = topK
        }

        enum CodingKeys: String, CodingKey { case teacherCheckpointSHA256 = "teacher_checkpoint_sha256", weight, temperature, topK = "top_k" }
    }

    public init(parentCheckpointSHA256: SHA256Digest, settings: FineTuneSettings, corpus: Corpus, wallSeconds: Double, curve: [FineTuner.Step],
                distillation: DistillationSettings? = nil) {
        self.parentCheckpointSHA256 = parentCheckpointSHA256
        method = settings.lora == nil ? "full" : "lora"
        loss = distillation == nil ? "cross-entropy" : "distillation"
        self.distillation = distillation
        self.settings = settings
        schedule = settings.schedule
        steps = curve.count
        tokens = curve.last?.tokens ?? 0
        self.corpus = corpus
        codeVersion = "hubctl \(HubVersion.current)"
        self.wallSeconds = wallSeconds
        self.curve = curve
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(schemaVersion, forKey: .schemaVersion)
        try c.encode(parentCheckpointSHA256, forKey: .parentCheckpointSHA256)
        try c.encode(method, forKey: .method)
        try c.encode(loss, forKey: .loss)
        try c.encode(distillation, forKey: .distillation)
        try c.encode(settings, forKey: .settings)
        try c.encode(schedule, forKey: .schedule)
        try c.encode(steps, forKey: .steps)
        try c.encode(tokens, forKey: .tokens)
        try c.encode(corpus, forKey: .corpus)
        try c.encode(codeVersion, forKey: .codeVersion)
        try c.encode(wallSeconds, forKey: .wallSeconds)
        try c.encode(curve, forKey: .curve)
    }

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", parentCheckpointSHA256 = "parent_checkpoint_sha256", method, loss, distillation, settings, schedule
        case steps, tokens, corpus, codeVersion = "code_version", wallSeconds = "wall_seconds", curve
    }
}

extension FineTuneRecord.Corpus {
    enum CodingKeys: String, CodingKey { case source, sha256, tokenRange = "token_range", sources }
}

extension FineTuneSettings {
    enum CodingKeys: String, CodingKey {
        case tokens, sequenceLength = "sequence_length", batchSequences = "batch_sequences", accumulation
        case peakLearningRate = "peak_learning_rate", warmupFraction = "warmup_fraction", clipNorm = "clip_norm", weightDecay = "weight_decay"
        case seed, lora
    }
}

extension LearningRateSchedule {
    enum CodingKeys: String, CodingKey { case peak, warmupSteps = "warmup_steps", totalSteps = "total_steps", floor }
}

extension FineTuner.Step {
    enum CodingKeys: String, CodingKey { case step, tokens, loss, learningRate = "learning_rate", gradientNorm = "gradient_norm" }
}
