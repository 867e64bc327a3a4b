import Checkpoint
import Compressor
import Evaluator
import Foundation
import HubCore
import Training

/// What a build makes: a base revision, a compression, an optional recovery fine-tune and
/// quantization, and an evaluation, registered as a variant. Its JSON form is `schemas/build-recipe.schema.json`. A recipe with a `sweep`
/// instead of a `compression` stands for the grid of methods × ratios, one variant each.
public struct BuildRecipe: Codable, Sendable, Equatable {
    public struct Compression: Codable, Sendable, Equatable {
        public var method: String
        public var ratio: Double
        /// Calibration tokens for methods that calibrate (default: the method's own).
        public var calibrationTokens: Int?
        /// Calibrate on the model's own samples instead of text (`hubctl compress --self-calibration`).
        public var selfCalibration: Bool

        public init(method: String, ratio: Double, calibrationTokens: Int? = nil, selfCalibration: Bool = false) {
            self.method = method
            self.ratio = ratio
            self.calibrationTokens = calibrationTokens
            self.selfCalibration = selfCalibration
        }

        enum CodingKeys: String, CodingKey { case method, ratio, calibrationTokens = "calibration_tokens", selfCalibration = "self_calibration" }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            method = try c.decode(String.self, forKey: .method)
            ratio = try c.decode(Double.self, forKey: .ratio)
            calibrationTokens = try c.decodeIfPresent(Int.self, forKey: .calibrationTokens)
            selfCalibration = try c.decodeIfPresent(Bool.self, forKey: .selfCalibration) ?? false
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(method, forKey: .method)
            try c.encode(ratio, forKey: .ratio)
            try c.encodeIfPresent(calibrationTokens, forKey: .calibrationTokens)
            // Absent when false, so recipes written before the option read and encode as they did.
            if selfCalibration { try c.encode(true, forKey: .selfCalibration) }
        }
    }

    /// Recovery fine-tuning of the compressed variant on the pinned corpus.
    public struct FineTune: Codable, Sendable, Equatable {
        public var tokens: Int
        public var loraRank: Int?
        /// Distil from the base (KL to its next-token distribution, mixed with cross-entropy).
        public var distill: Bool
        /// Read only these corpus sources (`hubctl finetune --corpus-source`); nil: all of them.
        /// Recovery is mostly a matter of domain: news alone wins back far more of the loss on
        /// news than the mixed corpus does at the same budget.
        public var corpusSources: [String]?
        /// Peak learning rate; nil: `hubctl finetune`'s default.
        public var learningRate: Double?
        /// Distil from the base's k largest logits, computed once per token range and cached
        /// (`hubctl finetune --teacher-top-k`): about twice the rate of running the teacher
        /// with every batch, and every later build distilling the same base on the same
        /// tokens reads the cache. Nil: the teacher's full distribution, on the fly.
        public var teacherTopK: Int?

        public init(tokens: Int, loraRank: Int? = nil, distill: Bool = false, corpusSources: [String]? = nil, learningRate: Double? = nil,
                    teacherTopK: Int? = nil) {
            self.tokens = tokens
            self.loraRank = loraRank
            self.distill = distill
            self.corpusSources = corpusSources
            self.learningRate = learningRate
            self.teacherTopK = teacherTopK
        }

        enum CodingKeys: String, CodingKey {
            case tokens, loraRank = "lora_rank", distill, corpusSources = "corpus_sources", learningRate = "learning_rate",
                 teacherTopK = "teacher_top_k"
        }
    }

    /// Block quantization of the finished variant (after any fine-tune), in the blocks the
    /// runtime decodes from: `hubctl quantize` as a stage. The fp32 variant is committed too,
    /// as the quantized one's lineage parent.
    public struct Quantization: Codable, Sendable, Equatable {
        /// q8_0 or q4_0.
        public var type: String
        /// The output matrix's type (default: q8_0 under q4_0, else `type`).
        public var headType: String?

        public init(type: String, headType: String? = nil) {
            self.type = type
            self.headType = headType
        }

        enum CodingKeys: String, CodingKey { case type, headType = "head_type" }
    }

    public struct Sweep: Codable, Sendable, Equatable {
        public var methods: [String]
        public var ratios: [Double]
        /// Fine-tuning budgets in tokens; 0 is no fine-tuning. Absent: none.
        public var budgets: [Int]?

        public init(methods: [String], ratios: [Double], budgets: [Int]? = nil) {
            self.methods = methods
            self.ratios = ratios
            self.budgets = budgets
        }
    }

    public struct Evaluation: Codable, Sendable, Equatable {
        /// smoke or full.
        public var suite: String
        public var latency: Bool
        /// The BIG-bench tasks scored, by name (as `hubctl eval --tasks` takes them); nil: the
        /// suite's four. Fewer tasks make a quicker check of a recipe before a sweep of it.
        public var tasks: [String]?

        public init(suite: String = "smoke", latency: Bool = true, tasks: [String]? = nil) {
            self.suite = suite
            self.latency = latency
            self.tasks = tasks
        }
    }

    public var schemaVersion = 1
    /// The base, as namespace/name[@revision].
    public var base: String
    /// The repository the variant is committed to; a sweep appends `-<method>-<ratio×100>`.
    public var name: String
    public var compression: Compression?
    public var finetune: FineTune?
    /// Applies to every cell of a sweep.
    public var quantization: Quantization?
    public var sweep: Sweep?
    public var evaluation: Evaluation

    public init(base: String, name: String, compression: Compression? = nil, finetune: FineTune? = nil, quantization: Quantization? = nil,
                sweep: Sweep? = nil, evaluation: Evaluation = Evaluation()) {
        self.base = base
        self.name = name
        self.compression = compression
        self.finetune = finetune
        self.quantization = quantization
        self.sweep = sweep
        self.evaluation = evaluation
    }

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", base, name, compression, finetune, quantization, sweep, evaluation
    }

    /// Where a quantized build's fp32 variant is committed (its lineage parent): the sweep
    /// cell's name without its `-q8_0`, or the name with `-fp32`.
    public var unquantizedName: String {
        guard let quantization else { return name }
        return Self.dropping("-\(quantization.type)", from: name) ?? name + "-fp32"
    }

    /// Where a fine-tuned build's compressed variant is committed (its lineage parent): the
    /// sweep cell's name without its budget, or the name with `-compressed`.
    public var compressedName: String {
        guard let finetune else { return unquantizedName }
        let tuned = quantization.flatMap { Self.dropping("-\($0.type)", from: name) } ?? name
        return Self.dropping("-ft\(finetune.tokens / 1000)k", from: tuned) ?? tuned + "-compressed"
    }

    /// `name` without `suffix`, or nil when it does not end with it.
    static func dropping(_ suffix: String, from name: String) -> String? {
        name.hasSuffix(suffix) ? String(name.dropLast(suffix.count)) : nil
    }

    /// The quantization types a recipe may name: those the runtime multiplies with.
    public static var quantizationTypes: [String] { QuantizedTensors.supported.map(QuantizedTensors.name(of:)) }

    /// The compression methods a recipe may name.
    public static var knownMethods: [String] { CompressionMethods.all.map(\.name) }

    /// Decodes and validates a recipe, naming the field that is wrong.
    public static func decode(_ data: Data, knownMethods: [String]) throws -> BuildRecipe {
        let recipe: BuildRecipe
        do { recipe = try JSONDecoder().decode(BuildRecipe.self, from: data) } catch let DecodingError.keyNotFound(key, context) {
            throw BuildError.invalidField((context.codingPath + [key]).map(\.stringValue).joined(separator: "."), "is required")
        } catch let DecodingError.typeMismatch(_, context) {
            throw BuildError.invalidField(context.codingPath.map(\.stringValue).joined(separator: "."), "has the wrong type (\(context.debugDescription))")
        } catch let DecodingError.valueNotFound(_, context) {
            throw BuildError.invalidField(context.codingPath.map(\.stringValue).joined(separator: "."), "is null")
        } catch {
            throw BuildError.invalidField("(document)", "is not a build recipe: \(error)")
        }
        try recipe.validate(knownMethods: knownMethods)
        return recipe
    }

    public func validate(knownMethods: [String]) throws {
        guard schemaVersion == 1 else { throw BuildError.invalidField("schema_version", "must be 1") }
        let baseName = base.split(separator: "@", maxSplits: 1).first.map(String.init) ?? ""
        guard (try? RepositoryName(baseName)) != nil else { throw BuildError.invalidField("base", "'\(base)' is not namespace/name[@revision]") }
        guard (try? RepositoryName(name)) != nil else { throw BuildError.invalidField("name", "'\(name)' is not namespace/name") }
        switch (compression, sweep) {
        case (nil, nil): throw BuildError.invalidField("compression", "is required (or a sweep)")
        case (.some, .some): throw BuildError.invalidField("sweep", "cannot be given with compression")
        default: break
        }
        func check(method: String, ratio: Double, field: String) throws {
            guard knownMethods.contains(method) else {
                throw BuildError.invalidField("\(field).method", "'\(method)' is not one of \(knownMethods.joined(separator: ", "))")
            }
            guard ratio > 0, ratio < 1 else { throw BuildError.invalidField("\(field).ratio", "\(ratio) is not strictly between 0 and 1") }
        }
        if let compression {
            try check(method: compression.method, ratio: compression.ratio, field: "compression")
            if let tokens = compression.calibrationTokens, tokens < 256 {
                throw BuildError.invalidField("compression.calibration_tokens", "\(tokens) is fewer than 256")
            }
            if compression.selfCalibration, (try? CompressionMethods.named(compression.method))?.needsCalibration != true {
                throw BuildError.invalidField("compression.self_calibration", "\(compression.method) reads no calibration")
            }
        }
        if let sweep {
            guard !sweep.methods.isEmpty else { throw BuildError.invalidField("sweep.methods", "is empty") }
            guard !sweep.ratios.isEmpty else { throw BuildError.invalidField("sweep.ratios", "is empty") }
            for method in sweep.methods { for ratio in sweep.ratios { try check(method: method, ratio: ratio, field: "sweep") } }
        }
        func check(finetune: FineTune, field: String) throws {
            guard finetune.tokens >= 1024 else { throw BuildError.invalidField("\(field).tokens", "\(finetune.tokens) is fewer than one step (1024 tokens)") }
            if let rank = finetune.loraRank, rank < 1 { throw BuildError.invalidField("\(field).lora_rank", "must be at least 1") }
            if let rate = finetune.learningRate, !(rate > 0 && rate <= 0.1) {
                throw BuildError.invalidField("\(field).learning_rate", "must lie in (0, 0.1] (got \(rate))")
            }
            if let k = finetune.teacherTopK {
                guard finetune.distill else { throw BuildError.invalidField("\(field).teacher_top_k", "needs \"distill\": true") }
                guard k >= 1 else { throw BuildError.invalidField("\(field).teacher_top_k", "must be at least 1 (got \(k))") }
            }
            if let sources = finetune.corpusSources {
                guard !sources.isEmpty else { throw BuildError.invalidField("\(field).corpus_sources", "is empty; leave it out to read every source") }
                do { _ = try FineTuneCorpus.selection(sources) } catch {
                    throw BuildError.invalidField("\(field).corpus_sources", "\(error)")
                }
            }
        }
        if let finetune {
            guard compression != nil else { throw BuildError.invalidField("finetune", "needs a compression (a sweep takes budgets instead)") }
            try check(finetune: finetune, field: "finetune")
        }
        for budget in sweep?.budgets ?? [] where budget != 0 { try check(finetune: FineTune(tokens: budget), field: "sweep.budgets") }
        if let quantization {
            guard Self.quantizationTypes.contains(quantization.type) else {
                throw BuildError.invalidField("quantization.type", "'\(quantization.type)' is not one of \(Self.quantizationTypes.joined(separator: ", "))")
            }
            if let head = quantization.headType, !Self.quantizationTypes.contains(head) {
                throw BuildError.invalidField("quantization.head_type", "'\(head)' is not one of \(Self.quantizationTypes.joined(separator: ", "))")
            }
        }
        guard ["smoke", "full"].contains(evaluation.suite) else {
            throw BuildError.invalidField("evaluation.suite", "'\(evaluation.suite)' is not smoke or full")
        }
        if let tasks = evaluation.tasks {
            guard !tasks.isEmpty else { throw BuildError.invalidField("evaluation.tasks", "is empty; leave it out to score the suite's tasks") }
            for task in tasks {
                do { _ = try EvaluationSuite.taskSpec(task) } catch { throw BuildError.invalidField("evaluation.tasks", "\(error)") }
            }
        }
    }

    /// The single-variant recipes a recipe stands for: itself, or one per cell of its sweep
    /// (duplicates of a cell collapse into one).
    public func expanded() -> [BuildRecipe] {
        guard let sweep else { return [self] }
        var seen = Set<String>(), recipes: [BuildRecipe] = []
        for method in sweep.methods {
            for ratio in sweep.ratios {
                for budget in sweep.budgets ?? [0] {
                    var variant = "\(name)-\(method)-\(Int((ratio * 100).rounded()))"
                    if budget > 0 { variant += "-ft\(budget / 1000)k" }
                    if let quantization { variant += "-\(quantization.type)" }
                    guard seen.insert(variant).inserted else { continue }
                    recipes.append(BuildRecipe(base: base, name: variant, compression: Compression(method: method, ratio: ratio),
                                               finetune: budget > 0 ? FineTune(tokens: budget) : nil, quantization: quantization,
                                               evaluation: evaluation))
                }
            }
        }
        return recipes
    }
}

public enum BuildError: Error, Equatable, CustomStringConvertible {
    case invalidField(String, String)
    case missingInput(String)
    case stageFailed(stage: String, reason: String)
    case cancelled(at: String)

    public var description: String {
        switch self {
        case .invalidField(let field, let reason): "build recipe: \(field) \(reason)"
        case .missingInput(let what): "build input missing: \(what)"
        case .stageFailed(let stage, let reason): "stage \(stage) failed: \(reason)"
        case .cancelled(let stage): "cancelled before \(stage) finished"
        }
    }
}
