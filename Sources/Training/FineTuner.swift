import COpenBLAS
import Transformer
import Foundation

/// How a fine-tuning run is shaped: D tokens in steps of `batchSequences` sequences of
/// `sequenceLength` tokens (accumulated over `accumulation` micro-batches), AdamW under a
/// warm-up + cosine schedule, the global gradient norm clipped.
public struct FineTuneSettings: Sendable, Codable, Equatable {
    public var tokens: Int
    public var sequenceLength = 256
    public var batchSequences = 4
    public var accumulation = 1
    public var peakLearningRate = 1e-4
    public var warmupFraction = 0.05
    public var clipNorm = 1.0
    public var weightDecay = 0.01

    public init(tokens: Int) { self.tokens = tokens }

    /// Seeds LoRA's initial A (full fine-tuning draws nothing at random).
    public var seed: UInt64 = 0
    /// Train low-rank adapters instead of every weight.
    public var lora: LoRASettings?

    public var tokensPerStep: Int { sequenceLength * batchSequences * accumulation }
    public var steps: Int { max(1, tokens / tokensPerStep) }
    public var schedule: LearningRateSchedule {
        LearningRateSchedule(peak: peakLearningRate, warmupSteps: max(1, Int(warmupFraction * Double(steps))), totalSteps: steps)
    }
}

/// Fine-tuning by next-token cross-entropy (or distillation from the parent) on a token
/// stream read in order from its start: the stream is cut into sequences of `sequenceLength`
/// tokens, consumed batch after batch, so the tokens a run saw are exactly a prefix of the
/// stream. Every weight trains, or only LoRA adapters that are merged at the end.
///
/// Nothing in a step depends on anything but the state a checkpoint holds (values, moments,
/// optimizer step, cursor), and every reduction runs in a fixed order, so a run resumed from
/// a checkpoint ends with the same bits as one never interrupted (at the same BLAS threads).
public struct FineTuner {
    public let settings: FineTuneSettings

    public init(settings: FineTuneSettings) throws {
        guard settings.tokens > 0 else { throw FineTuneError.invalid("tokens must be positive (got \(settings.tokens))") }
        guard settings.sequenceLength >= 2, settings.batchSequences >= 1, settings.accumulation >= 1 else {
            throw FineTuneError.invalid("sequence length must be at least 2 and batch and accumulation at least 1")
        }
        guard settings.peakLearningRate > 0, settings.clipNorm > 0 else {
            throw FineTuneError.invalid("the learning rate and the clipping norm must be positive")
        }
        self.settings = settings
    }

    public struct Step: Sendable, Codable, Equatable {
        public let step: Int
        public let tokens: Int
        public let loss: Double
        public let learningRate: Double
        public let gradientNorm: Double
    }

    /// Tokens of stream a run of these settings reads.
    public var tokensNeeded: Int { settings.steps * settings.tokensPerStep }

    /// Runs every step (from the last checkpoint, when `checkpoints` holds one) and returns the
    /// whole loss curve; `parameters` end as the fine-tuned weights (LoRA merged in). When
    /// `shouldStop` turns true, the run saves a checkpoint after the step in flight and throws
    /// `FineTuneError.interrupted`.
    public func run(_ parameters: inout TrainableParameters, stream: [Int], distillation: LanguageModelPass.Distillation? = nil,
                    checkpoints: FineTuneCheckpoints? = nil, shouldStop: () -> Bool = { false },
                    progress: (Step) -> Void = { _ in }) throws -> Outcome {
        guard stream.count >= tokensNeeded else { throw FineTuneError.corpusTooShort(tokens: stream.count, needed: tokensNeeded) }
        Self.keepFreedMemory()
        return try BLASThreads.withSpinExponent(Self.blasSpinExponent) {
            try steps(&parameters, stream: stream, distillation: distillation, checkpoints: checkpoints, shouldStop: shouldStop,
                      progress: progress)
        }
    }

    /// OpenBLAS's idle workers spin for 2^28 cycles (about 0.1 s) after each call by default,
    /// and a step's elementwise work between its BLAS calls (SwiGLU, softmax, norms, the loss,
    /// the optimizer) runs on the same cores: with the default, fine-tuning SmolLM2 ran at
    /// 117 tokens/s on two cores, with 2^16 cycles (about 25 µs, still longer than the gap
    /// between one head's attention products and the next) at 130.
    static let blasSpinExponent = 16

    private func steps(_ parameters: inout TrainableParameters, stream: [Int], distillation: LanguageModelPass.Distillation?,
                       checkpoints: FineTuneCheckpoints?, shouldStop: () -> Bool, progress: (Step) -> Void) throws -> Outcome {
        var optimizer = AdamW(weightDecay: Float(settings.weightDecay))
        let schedule = settings.schedule
        var adapters = settings.lora.map { LoRAAdapters(settings: $0, base: parameters, seed: settings.seed) }
        var curve: [Step] = []
        var cursor = 0
        var earlierSeconds = 0.0
        if let checkpoints, let saved = try checkpoints.latest() {
            if adapters != nil { adapters!.values = saved.values } else { parameters.values.merge(saved.values) { $1 } }
            optimizer.first = saved.first
            optimizer.second = saved.second
            optimizer.step = saved.optimizerStep
            cursor = saved.cursor
            curve = saved.curve
            earlierSeconds = saved.wallSeconds
        }
        let start = Date()
        func save() throws {
            guard let checkpoints else { return }
            let values = adapters?.values ?? parameters.values
            let shapes = adapters?.tensorShapes ?? parameters.shapes
            try checkpoints.save(.init(values: values, shapes: shapes, first: optimizer.first, second: optimizer.second,
                                       optimizerStep: optimizer.step, cursor: cursor, curve: curve,
                                       wallSeconds: earlierSeconds + Date().timeIntervalSince(start)))
        }
        for step in curve.count ..< settings.steps {
            let model = adapters?.merged(into: parameters) ?? parameters
            var total: [String: [Float]]?
            var loss = 0.0
            for _ in 0 ..< settings.accumulation {
                let batch = (0 ..< settings.batchSequences).map { n in
                    Array(stream[(cursor + n * settings.sequenceLength) ..< (cursor + (n + 1) * settings.sequenceLength)])
                }
                let firstSequence = cursor / settings.sequenceLength
                cursor += settings.batchSequences * settings.sequenceLength
                let result = try LanguageModelPass(parameters: model).run(batch, distillation: distillation, firstSequence: firstSequence)
                loss += result.loss / Double(settings.accumulation)
                let scale = 1 / Float(settings.accumulation)
                // A single micro-batch's gradients are the step's as they are (× 1 changes no bit,
                // and copying 4 bytes a parameter took a quarter of a second a step).
                if total == nil { total = scale == 1 ? result.gradients! : result.gradients!.mapValues { $0.map { $0 * scale } } } else {
                    for (name, g) in result.gradients! {
                        total![name]!.withUnsafeMutableBufferPointer { t in for i in g.indices { t[i] += g[i] * scale } }
                    }
                }
            }
            let gradients = adapters?.gradients(from: total!) ?? total!
            // Clipping's factor is applied inside the optimizer's pass over the gradients.
            let norm = GradientClipping.norm(gradients)
            let clip = GradientClipping.scale(norm: norm, maximum: settings.clipNorm) ?? 1
            let rate = schedule.rate(at: step)
            if adapters != nil {
                optimizer.update(&adapters!.values, gradients: gradients, learningRate: Float(rate), gradientScale: clip)
            } else {
                optimizer.update(&parameters, gradients: gradients, learningRate: Float(rate), gradientScale: clip)
            }
            let record = Step(step: step + 1, tokens: cursor, loss: loss, learningRate: rate, gradientNorm: norm)
            curve.append(record)
            progress(record)
            let last = step + 1 == settings.steps
            if shouldStop(), !last {
                try save()
                throw FineTuneError.interrupted(step: step + 1, checkpoint: checkpoints?.directory.path)
            }
            if let checkpoints, (step + 1) % checkpoints.every == 0, !last { try save() }
        }
        if let adapters { parameters = adapters.merged(into: parameters) }
        return Outcome(curve: curve, wallSeconds: earlierSeconds + Date().timeIntervalSince(start))
    }

    /// Every step frees and reallocates about 2 GB of gradients and kept activations. By
    /// default glibc returns blocks above 32 MB to the kernel, and the next step then pays a
    /// page fault and a zeroed page for every 4 KB it touches (about a tenth of a step here);
    /// keeping freed memory in the heap for the process lets each step reuse the last one's.
    static func keepFreedMemory() {
        mallopt(M_MMAP_MAX, 0)
        mallopt(M_TRIM_THRESHOLD, Int32.max)
    }

    public struct Outcome: Sendable {
        public let curve: [Step]
        /// Seconds of training, the earlier sessions of a resumed run included.
        public let wallSeconds: Double
    }
}

public enum FineTuneError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    case corpusTooShort(tokens: Int, needed: Int)
    case corpusTooSmall(atMost: Int, needed: Int, sources: [String]? = nil)
    case corpusMissing(String)
    case corpusMismatch(directory: String, found: String, pinned: String)
    case foreignCheckpoint(directory: String, field: String, saved: String, requested: String)
    case interrupted(step: Int, checkpoint: String?)

    public var description: String {
        switch self {
        case .invalid(let reason): "invalid fine-tuning settings: \(reason)"
        case .corpusTooShort(let tokens, let needed): "the fine-tuning corpus has \(tokens) tokens; this run needs \(needed)"
        case .corpusTooSmall(let bound, let needed, let sources):
            "the fine-tuning corpus\(FineTuneCorpus.restriction(sources)) has at most \(bound) tokens (one a byte); this run needs \(needed)"
        case .corpusMissing(let path): "the fine-tuning corpus file \(path) is missing; run scripts/fetch-assets.sh to fetch and verify it"
        case .corpusMismatch(let directory, let found, let pinned):
            "the fine-tuning corpus read from \(directory) has sha256 \(found), not the pinned \(pinned); run scripts/fetch-assets.sh"
        case .foreignCheckpoint(let directory, let field, let saved, let requested):
            "the checkpoint in \(directory) belongs to another run: its \(field) is \(saved), this run's is \(requested); delete it to start over"
        case .interrupted(let step, let checkpoint):
            "interrupted after step \(step)" + (checkpoint.map { "; the checkpoint in \($0) resumes it" } ?? "")
        }
    }
}
