import Checkpoint
import Foundation
import HubCore
import HubTestSupport
import Testing
import Transformer
@testable import Training

@Suite("LoRA")
struct LoRATests {
    static let batch = [[3, 17, 5, 29, 8, 1, 12], [30, 2, 9, 9, 21]]

    /// Adapters on every projection of the heterogeneous model, B made non-zero so that both
    /// A's and B's gradients are non-trivial. The B's are filled in name order: a dictionary's
    /// order changes from process to process, and with it, unsorted, which B got which draws
    /// (one such draw failed the finite-difference check, on one CI run in many).
    func adapters(_ base: TrainableParameters, rank: Int = 2) throws -> LoRAAdapters {
        var adapters = LoRAAdapters(settings: try LoRASettings(rank: rank, alpha: 3), base: base, seed: 7)
        var generator = SplitMix64(seed: 11)
        for name in adapters.values.keys.sorted() where name.hasSuffix(".lora_B") {
            adapters.values[name] = adapters.values[name]!.map { _ in Float(generator.nextUnit() - 0.5) }
        }
        return adapters
    }

    @Test("A's and B's gradients match finite differences of the merged model's loss")
    func gradients() throws {
        let base = try TinyModels.heterogeneous()
        let adapters = try adapters(base)
        let merged = adapters.merged(into: base)
        let weightGradients = try #require(try LanguageModelPass(parameters: merged).run(Self.batch).gradients)
        let analytic = adapters.gradients(from: weightGradients)
        #expect(Set(analytic.keys) == Set(adapters.values.keys))
        // A smaller step than the other checks: moving one entry of A moves a whole column of
        // the merged weight (by s·B·ε), so the central difference's own error (ε²/6 times the
        // third derivative) is larger. Over 20 draws of B, the worst entry used 98% of the
        // tolerance at ε = 1e-2 (one CI draw went past it) and 14% at 2.5e-3.
        let checked = try GradientTests.compare(adapters.values, analytic: analytic, epsilon: 2.5e-3) { values in
            var moved = adapters
            moved.values = values
            return try LanguageModelPass(parameters: moved.merged(into: base)).run(Self.batch, backward: false).loss
        }
        // 3 attention blocks × 4 projections + 3 MLP blocks × 3, each with A and B.
        #expect(adapters.values.count == 2 * (3 * 4 + 3 * 3))
        #expect(checked >= 2 * adapters.values.count)
    }

    @Test("a new adapter leaves the model exactly as it was; training moves only adapted weights, and the result keeps its shape")
    func startsAtParentAndMerges() throws {
        var parameters = try TinyModels.heterogeneous()
        let before = parameters
        let settings0 = try LoRASettings(rank: 2, targets: ["q_proj", "down_proj"])
        #expect(LoRAAdapters(settings: settings0, base: parameters, seed: 1).merged(into: parameters).values == parameters.values)

        var settings = FineTuneSettings(tokens: 640)
        settings.sequenceLength = 16
        settings.batchSequences = 2
        settings.peakLearningRate = 1e-2
        settings.lora = settings0
        let stream = (0 ..< 800).map { [3, 17, 5, 29, 8, 1, 12, 30][$0 % 8] }
        let curve = try FineTuner(settings: settings).run(&parameters, stream: stream).curve
        #expect(curve.last!.loss < curve.first!.loss)
        #expect(parameters.shapes == before.shapes)
        for (name, values) in parameters.values {
            let adapted = name.hasSuffix("q_proj.weight") || name.hasSuffix("down_proj.weight")
            #expect((values != before.values[name]!) == adapted, "\(name) changed: \(values != before.values[name]!)")
        }
    }

    @Test("unknown targets and a rank below one are refused, naming the choices")
    func refusals() {
        #expect(throws: FineTuneError.invalid("LoRA rank must be at least 1 (got 0)")) { try LoRASettings(rank: 0) }
        #expect(throws: FineTuneError.self) { try LoRASettings(rank: 4, targets: ["qproj"]) }
        do {
            _ = try LoRASettings(rank: 4, targets: ["qproj"])
        } catch {
            #expect("\(error)".contains("unknown LoRA target qproj; choose from q_proj"))
        }
    }
}

@Suite("Checkpoints and resume")
struct ResumeTests {
    static let stream = (0 ..< 2000).map { [3, 17, 5, 29, 8, 1, 12, 30, 2, 9][$0 % 10] }

    static func settings(lora: Bool) throws -> FineTuneSettings {
        var settings = FineTuneSettings(tokens: 640)
        settings.sequenceLength = 16
        settings.batchSequences = 2
        settings.accumulation = 2
        settings.peakLearningRate = 5e-3
        settings.seed = 3
        if lora { settings.lora = try LoRASettings(rank: 2) }
        return settings
    }

    @Test("a run stopped mid-way and resumed from its checkpoint ends with bit-identical weights and curve", arguments: [false, true])
    func resumeIsExact(lora: Bool) throws {
        let settings = try Self.settings(lora: lora)
        let tuner = try FineTuner(settings: settings)
        var reference = try TinyModels.heterogeneous()
        let uninterrupted = try tuner.run(&reference, stream: Self.stream)

        let directory = try TemporaryDirectory()
        let checkpoints = try FineTuneCheckpoints(directory: directory.url.appendingPathComponent("run.checkpoint"), every: 4,
                                                  identity: ["run": "test"])
        var first = try TinyModels.heterogeneous()
        var steps = 0
        #expect(throws: FineTuneError.interrupted(step: 7, checkpoint: checkpoints.directory.path)) {
            try tuner.run(&first, stream: Self.stream, checkpoints: checkpoints, shouldStop: { steps == 7 }) { _ in steps += 1 }
        }
        let saved = try #require(try checkpoints.latest())
        #expect(saved.curve.count == 7 && saved.cursor == 7 * settings.tokensPerStep)

        var resumed = try TinyModels.heterogeneous()  // a fresh process starts from the parent again
        let rest = try tuner.run(&resumed, stream: Self.stream, checkpoints: checkpoints)
        #expect(rest.curve == uninterrupted.curve)
        #expect(resumed.values == reference.values)
    }

    @Test("a checkpoint of another run is refused, naming what differs, and left as it was")
    func foreignCheckpointRefused() throws {
        let settings = try Self.settings(lora: false)
        let directory = try TemporaryDirectory()
        let url = directory.url.appendingPathComponent("run.checkpoint")
        var parameters = try TinyModels.heterogeneous()
        let theirs = try FineTuneCheckpoints(directory: url, every: 2, identity: ["parent_checkpoint_sha256": "aaa", "settings": "x"])
        _ = try? FineTuner(settings: settings).run(&parameters, stream: Self.stream, checkpoints: theirs, shouldStop: { true })
        let latest = try String(contentsOf: url.appendingPathComponent("latest"), encoding: .utf8)

        let ours = try FineTuneCheckpoints(directory: url, every: 2, identity: ["parent_checkpoint_sha256": "bbb", "settings": "x"])
        var fresh = try TinyModels.heterogeneous()
        let before = fresh.values
        #expect(throws: FineTuneError.foreignCheckpoint(directory: url.path, field: "parent_checkpoint_sha256", saved: "aaa", requested: "bbb")) {
            try FineTuner(settings: settings).run(&fresh, stream: Self.stream, checkpoints: ours)
        }
        #expect(fresh.values == before)
        #expect(try String(contentsOf: url.appendingPathComponent("latest"), encoding: .utf8) == latest)
    }
}
