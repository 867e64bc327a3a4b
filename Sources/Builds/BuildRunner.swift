import Checkpoint
import Compressor
import Evaluator
import Foundation
import HubCore
import Training
import Transformer

/// One stage with its inputs by path: what `hubctl stage run <stage.json>` reads, and all a
/// worker on another machine needs (with the same asset cache and a shared stage cache).
public struct StageJob: Sendable, Codable, Equatable {
    public let spec: StageSpec
    public let input: ModelFiles
    /// The distillation teacher of a finetune stage.
    public let teacher: ModelFiles?
    /// What an evaluation's record calls the model.
    public let label: String

    public init(spec: StageSpec, input: ModelFiles, teacher: ModelFiles? = nil, label: String) {
        self.spec = spec
        self.input = input
        self.teacher = teacher
        self.label = label
    }
}

/// What one built variant came to: its files, the record of every stage, and its metrics.
public struct BuildOutput: Sendable {
    public let recipe: BuildRecipe
    /// The models the build made on the way to the variant, base side first, each with the
    /// repository it is committed to as the next one's lineage parent: the compressed variant
    /// when it was fine-tuned or quantized after, the fine-tuned one when it was quantized.
    public let intermediates: [(name: String, directory: URL)]
    public let variant: URL
    public let metrics: MetricsRecord
    public let stages: [StageRecord]
}

/// Runs builds in this process, stage by stage through a cache: a stage whose key is in the
/// cache is not run again. Counts hits and misses, so a sweep can show what it shared.
public final class BuildRunner: @unchecked Sendable {
    public let cache: any StageCache
    /// `$HUB_CACHE`: the calibration articles and BIG-bench tasks.
    public let assetCache: URL
    public let events: @Sendable (StageEvent) -> Void
    /// `events` as plain lines, for the parts that only say what they are doing.
    var progress: @Sendable (String) -> Void { { [events] in events(StageEvent(message: $0)) } }
    private let lock = NSLock()
    private var counts = (hits: 0, misses: 0)

    public init(cache: any StageCache, assetCache: URL, progress: @escaping @Sendable (StageEvent) -> Void = { _ in }) {
        self.cache = cache
        self.assetCache = assetCache
        self.events = progress
    }

    public var hits: Int { lock.withLock { counts.hits } }
    public var misses: Int { lock.withLock { counts.misses } }

    /// The output of `spec`: from the cache, or made by `body` in a work directory and published.
    public func stage(_ spec: StageSpec, _ body: (URL) throws -> Void) throws -> (URL, StageRecord) {
        let key = spec.key
        if let cached = try cache.lookup(key) {
            lock.withLock { counts.hits += 1 }
            events(StageEvent(message: "\(spec.label): cached", fraction: 1))
            return (cached, try StageRecord.read(from: cached))
        }
        lock.withLock { counts.misses += 1 }
        progress("\(spec.label): running")
        let work = try cache.workDirectory(for: key)
        let start = DispatchTime.now().uptimeNanoseconds
        do { try body(work) } catch {
            try? FileManager.default.removeItem(at: work)
            throw BuildError.stageFailed(stage: spec.label, reason: "\(error)")
        }
        let record = StageRecord(spec: spec, key: key, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9,
                                 createdAt: ISO8601DateFormatter().string(from: Date()))
        return (try cache.publish(work, record: record), record)
    }

    /// Runs one stage job through the cache: its output directory and record. The job is all
    /// it needs, which is what makes a stage runnable in another process
    /// (`hubctl stage run <stage.json>`) or as a cluster job.
    public func run(_ job: StageJob) throws -> (URL, StageRecord) {
        let spec = job.spec, settings = spec.settings
        func number(_ key: String) -> Double? { if case .number(let value)? = settings[key] { value } else { nil } }
        func flag(_ key: String) -> Bool { if case .bool(let value)? = settings[key] { value } else { false } }
        switch spec.kind {
        case .compress:
            guard let method = settings["method"]?.stringValue, let ratio = number("ratio") else {
                throw BuildError.invalidField("settings", "a compress stage needs method and ratio")
            }
            let compression = BuildRecipe.Compression(method: method, ratio: ratio, calibrationTokens: number("calibration_tokens").map { Int($0) },
                                                      selfCalibration: flag("self_calibration"))
            return try stage(spec) { work in try Self.compress(job.input, compression, into: work, assets: assetCache, progress: progress) }
        case .finetune:
            guard let tokens = number("tokens") else { throw BuildError.invalidField("settings", "a finetune stage needs tokens") }
            var sources: [String]?
            if case .array(let names)? = settings["corpus_sources"] { sources = names.compactMap(\.stringValue) }
            let finetune = BuildRecipe.FineTune(tokens: Int(tokens), loraRank: number("lora_rank").map { Int($0) }, distill: flag("distill"),
                                                corpusSources: sources, learningRate: number("learning_rate"),
                                                teacherTopK: number("teacher_top_k").map { Int($0) })
            if finetune.distill, job.teacher == nil { throw BuildError.missingInput("the teacher of a distilling finetune stage") }
            let checkpoints = cache.checkpointDirectory(for: spec.key)
            return try stage(spec) { work in
                try Self.fineTune(job.input, finetune, teacher: job.teacher, into: work, checkpoints: checkpoints, assets: assetCache,
                                  events: events)
            }
        case .quantize:
            guard let type = settings["type"]?.stringValue else { throw BuildError.invalidField("settings", "a quantize stage needs type") }
            let quantization = BuildRecipe.Quantization(type: type, headType: settings["head_type"]?.stringValue)
            return try stage(spec) { work in try Self.quantize(job.input, quantization, into: work) }
        case .evaluate:
            var tasks: [String]?
            if case .array(let names)? = settings["tasks"] { tasks = names.compactMap(\.stringValue) }
            let evaluation = BuildRecipe.Evaluation(suite: settings["suite"]?.stringValue ?? "smoke", latency: flag("latency"), tasks: tasks)
            return try stage(spec) { work in
                try Self.evaluate(job.input, evaluation, label: job.label, into: work, assets: assetCache, progress: progress)
            }
        }
    }

    /// Compresses `base`, fine-tunes when the recipe says so, and evaluates the result, each
    /// stage a job run by `execute` (this process by default).
    public func build(_ recipe: BuildRecipe, base: ModelFiles, execute: ((StageJob) throws -> (URL, StageRecord))? = nil) throws -> BuildOutput {
        let execute = execute ?? { try self.run($0) }
        guard let compression = recipe.compression else { throw BuildError.invalidField("compression", "is required (expand sweeps first)") }
        let baseSHA = try SHA256Digest.ofFile(at: base.weights)
        var settings: [String: JSONValue] = ["method": .string(compression.method), "ratio": .number(compression.ratio)]
        if let tokens = compression.calibrationTokens { settings["calibration_tokens"] = .number(Double(tokens)) }
        // Only when set: the stage keys of every recipe written before the option stay as they were.
        if compression.selfCalibration { settings["self_calibration"] = .bool(true) }
        let (variant, compressed) = try execute(StageJob(spec: StageSpec(kind: .compress, inputSHA256: baseSHA, settings: .object(settings)),
                                                         input: base, label: recipe.name))
        var stages = [compressed], final = variant, intermediates: [(name: String, directory: URL)] = []
        if let finetune = recipe.finetune {
            let compressedSHA = try SHA256Digest.ofFile(at: variant.appendingPathComponent("model.safetensors"))
            var settings: [String: JSONValue] = ["tokens": .number(Double(finetune.tokens)), "distill": .bool(finetune.distill)]
            if let rank = finetune.loraRank { settings["lora_rank"] = .number(Double(rank)) }
            if finetune.distill { settings["teacher_sha256"] = .string(baseSHA.hex) }
            // Only when set, so that the stage keys of recipes written before the options stay.
            if let sources = finetune.corpusSources { settings["corpus_sources"] = .array(sources.map { .string($0) }) }
            if let rate = finetune.learningRate { settings["learning_rate"] = .number(rate) }
            if let k = finetune.teacherTopK { settings["teacher_top_k"] = .number(Double(k)) }
            let (tuned, record) = try execute(StageJob(spec: StageSpec(kind: .finetune, inputSHA256: compressedSHA, settings: .object(settings)),
                                                       input: ModelFiles(directory: variant), teacher: finetune.distill ? base : nil,
                                                       label: recipe.name))
            stages.append(record)
            intermediates.append((recipe.compressedName, variant))
            final = tuned
        }
        if let quantization = recipe.quantization {
            var settings: [String: JSONValue] = ["type": .string(quantization.type)]
            if let head = quantization.headType { settings["head_type"] = .string(head) }
            let (quantized, record) = try execute(StageJob(spec: StageSpec(kind: .quantize, inputSHA256: try SHA256Digest.ofFile(at: final.appendingPathComponent("model.safetensors")),
                                                                           settings: .object(settings)),
                                                           input: ModelFiles(directory: final), label: recipe.name))
            stages.append(record)
            intermediates.append((recipe.unquantizedName, final))
            final = quantized
        }
        let variantFiles = ModelFiles(directory: final)
        // Tasks join the stage's settings only when chosen, so a recipe without them keeps its cached stages.
        var evaluationSettings: [String: JSONValue] = ["suite": .string(recipe.evaluation.suite), "latency": .bool(recipe.evaluation.latency)]
        if let tasks = recipe.evaluation.tasks { evaluationSettings["tasks"] = .array(tasks.map { .string($0) }) }
        let evaluate = StageSpec(kind: .evaluate, inputSHA256: try SHA256Digest.ofFile(at: variantFiles.weights),
                                 settings: .object(evaluationSettings))
        let (evaluation, evaluated) = try execute(StageJob(spec: evaluate, input: variantFiles, label: recipe.name))
        let metrics = try JSONDecoder().decode(MetricsRecord.self, from: Data(contentsOf: evaluation.appendingPathComponent("metrics.json")))
        return BuildOutput(recipe: recipe, intermediates: intermediates, variant: final, metrics: metrics,
                           stages: stages + [evaluated])
    }

    /// The compress stage: `hubctl compress` as a function of files.
    static func compress(_ base: ModelFiles, _ settings: BuildRecipe.Compression, into work: URL, assets: URL,
                         progress: @escaping @Sendable (String) -> Void) throws {
        let method = try CompressionMethods.named(settings.method)
        var calibration: CalibrationData?
        if settings.selfCalibration {
            let tokenizer = try BPETokenizer(huggingFaceJSON: base.tokenizer, tokenizerConfig: base.tokenizerConfig)
            progress("sampling calibration from the model itself")
            calibration = try CalibrationData.sampled(config: base.config, weights: base.weights, tokenizer: tokenizer,
                                                      tokens: settings.calibrationTokens ?? CalibrationData.defaultSampledTokens)
        } else if method.needsCalibration {
            let tokenizer = try BPETokenizer(huggingFaceJSON: base.tokenizer, tokenizerConfig: base.tokenizerConfig)
            let (text, source) = try XSumCorpus.calibrationText(bigbench: assets.appendingPathComponent("bigbench"))
            let tokens = settings.calibrationTokens ?? (method is SliceGPTSlicing ? SliceGPTSlicing.defaultCalibrationTokens : 8192)
            calibration = try CalibrationData(text: text, source: source,
                                              tokenizer: tokenizer, maxTokens: tokens, minimumTokens: min(1024, tokens))
        }
        var companions: [String: URL] = ["tokenizer.json": base.tokenizer]
        if let config = base.tokenizerConfig { companions["tokenizer_config.json"] = config }
        // The compressor creates its output directory itself, whole or not at all.
        let output = work.appendingPathComponent("model")
        _ = try Compressor(method: method).compress(config: base.config, weights: base.weights, companions: companions, ratio: settings.ratio,
                                                    calibration: calibration, output: output, progress: progress)
        try hoist(output, into: work)
    }

    /// Moves what a writer put in `output` (a directory it insists on creating whole) up into
    /// the stage's work directory.
    static func hoist(_ output: URL, into work: URL) throws {
        for name in try FileManager.default.contentsOfDirectory(atPath: output.path) {
            try FileManager.default.moveItem(at: output.appendingPathComponent(name), to: work.appendingPathComponent(name))
        }
        try FileManager.default.removeItem(at: output)
    }

    /// The fine-tune stage: `hubctl finetune` as a function of files, checkpointing into a
    /// directory that outlives the attempt.
    static func fineTune(_ model: ModelFiles, _ settings: BuildRecipe.FineTune, teacher: ModelFiles?, into work: URL, checkpoints: URL,
                         assets: URL, events: @escaping @Sendable (StageEvent) -> Void) throws {
        var tuning = FineTuneSettings(tokens: settings.tokens)
        if let rank = settings.loraRank { tuning.lora = try LoRASettings(rank: rank) }
        if let rate = settings.learningRate { tuning.peakLearningRate = rate }
        // A top-k cache goes beside the stage checkpoints (FineTuneJob's default), shared by
        // every stage of this cache that distils the same base on the same tokens.
        var job = FineTuneJob(settings: tuning, model: model,
                              teacher: teacher.map { .init(config: $0.config, weights: $0.weights, topK: settings.teacherTopK) },
                              bigbench: assets.appendingPathComponent("bigbench"), checkpointDirectory: checkpoints)
        job.corpusSources = settings.corpusSources
        let output = work.appendingPathComponent("model")
        let steps = tuning.steps
        _ = try job.run(output: output, describe: { events(StageEvent(message: $0)) }) { step in
            // Every step moves the fraction; every tenth also says its loss in the log.
            events(StageEvent(message: step.step % 10 == 0 || step.step == steps
                                  ? String(format: "fine-tuning step %d/%d, %d tokens, loss %.3f", step.step, steps, step.tokens, step.loss) : "",
                              fraction: Double(step.step) / Double(steps)))
        }
        try hoist(output, into: work)
    }

    /// The quantize stage: `hubctl quantize` as a function of files.
    static func quantize(_ model: ModelFiles, _ settings: BuildRecipe.Quantization, into work: URL) throws {
        let output = work.appendingPathComponent("model")
        _ = try ModelQuantizer.quantize(model, to: try ModelQuantizer.blockType(named: settings.type),
                                        headType: try settings.headType.map { try ModelQuantizer.blockType(named: $0) }, destination: output)
        try hoist(output, into: work)
    }

    /// The evaluate stage: `hubctl eval` as a function of files; writes metrics.json.
    static func evaluate(_ model: ModelFiles, _ settings: BuildRecipe.Evaluation, label: String, into work: URL, assets: URL,
                         progress: @escaping @Sendable (String) -> Void) throws {
        var suite = try EvaluationSuite.named(settings.suite, tasks: settings.tasks)
        if !settings.latency { suite.latency = nil }
        let config = try LlamaConfig.load(from: model.config)
        let runtime = try LlamaModel(weights: ModelWeights(config: config, safetensors: SafetensorsFile(path: model.weights.path)))
        let tokenizer = try BPETokenizer(huggingFaceJSON: model.tokenizer, tokenizerConfig: model.tokenizerConfig)
        let bytes = [model.config, model.weights, model.tokenizer].compactMap {
            (try? FileManager.default.attributesOfItem(atPath: $0.path)[.size]) as? Int
        }.reduce(0, +)
        let record = try Evaluation(suite: suite, bigbench: assets.appendingPathComponent("bigbench"))
            .run(model: runtime, tokenizer: tokenizer, label: label, bytesOnDisk: bytes, progress: progress)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try encoder.encode(record).write(to: work.appendingPathComponent("metrics.json"))
    }
}
