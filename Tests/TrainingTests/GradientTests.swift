import Checkpoint
import Foundation
import HubCore
import HubTestSupport
import Testing
import Transformer
@testable import Training

/// The shared tiny checkpoints as trainable parameters: a heterogeneous model with every
/// layer kind the runtime runs (GQA attention, SwiGLU, a block without attention, one without
/// MLP, the residual narrowing through shortcuts, an untied head) and a uniform tied one.
enum TinyModels {
    static func heterogeneous() throws -> TrainableParameters { trainable(try TinyCheckpoint.heterogeneous()) }

    static func tied() throws -> TrainableParameters { trainable(try TinyCheckpoint.uniform()) }

    static func random(_ config: LlamaConfig, seed: UInt64) -> TrainableParameters { trainable(TinyCheckpoint(random: config, seed: seed)) }

    static func trainable(_ c: TinyCheckpoint) -> TrainableParameters { TrainableParameters(config: c.config, tensors: c.tensors) }

    /// The runtime's view of the same parameters.
    static func runtime(_ parameters: TrainableParameters) throws -> LlamaModel {
        try LlamaModel(weights: ModelWeights(config: parameters.config, tensors: parameters.tensors))
    }
}

@Suite("Backward pass")
struct GradientTests {
    static let batch = [[3, 17, 5, 29, 8, 1, 12], [30, 2, 9, 9, 21]]

    /// Central differences of the loss in a few entries of every parameter tensor against the
    /// analytic gradient.
    func check(_ parameters: TrainableParameters, batch: [[Int]], distillation: LanguageModelPass.Distillation? = nil) throws {
        let analytic = try #require(try LanguageModelPass(parameters: parameters).run(batch, distillation: distillation).gradients)
        let checked = try Self.compare(parameters.values, analytic: analytic) { values in
            var moved = parameters
            moved.values = values
            return try LanguageModelPass(parameters: moved).run(batch, backward: false, distillation: distillation).loss
        }
        #expect(checked >= 3 * parameters.values.count - 5)
    }

    /// Compares `analytic` with central differences of `loss` (step ±`epsilon`) in entries 0,
    /// count/3 and count − 1 of every tensor of `values`; returns how many entries it checked.
    static func compare(_ values: [String: [Float]], analytic: [String: [Float]], epsilon: Float = 1e-2,
                        loss: ([String: [Float]]) throws -> Double) throws -> Int {
        var checked = 0
        for name in values.keys.sorted() {
            let count = values[name]!.count
            for index in Set([0, count / 3, count - 1]) {
                var up = values, down = values
                up[name]![index] += epsilon
                down[name]![index] -= epsilon
                let numeric = (try loss(up) - loss(down)) / Double(2 * epsilon)
                let value = Double(analytic[name]![index])
                #expect(abs(value - numeric) <= 3e-4 + 2e-2 * max(abs(value), abs(numeric)),
                        "\(name)[\(index)]: analytic \(value), finite difference \(numeric)")
                checked += 1
            }
        }
        return checked
    }

    @Test("every parameter of a heterogeneous model (GQA, shortcuts, missing sublayers, untied head) matches finite differences")
    func heterogeneous() throws {
        let parameters = try TinyModels.heterogeneous()
        #expect(parameters.values.keys.contains("model.layers.1.self_attn.shortcut.weight"))
        #expect(parameters.values.keys.contains("model.layers.1.mlp.shortcut.weight"))
        try check(parameters, batch: Self.batch)
    }

    @Test("a tied head's gradient lands on the embedding, and matches finite differences")
    func tiedHead() throws {
        let parameters = try TinyModels.tied()
        #expect(parameters.values["lm_head.weight"] == nil)
        try check(parameters, batch: Self.batch)
    }

    @Test("distillation from a teacher of other widths: every parameter matches finite differences")
    func distillationGradients() throws {
        let student = try TinyModels.heterogeneous()
        var teacherConfig = student.config
        teacherConfig.hubLayers = nil
        teacherConfig.numHiddenLayers = 2
        let teacher = try TinyModels.runtime(TinyModels.random(teacherConfig, seed: 9))
        try check(student, batch: Self.batch, distillation: .init(teacher: teacher, weight: 0.7, temperature: 2))
    }

    @Test("distillation with weight 0 is plain cross-entropy; a student identical to its teacher has no soft loss")
    func distillationLimits() throws {
        let parameters = try TinyModels.tied()
        let pass = try LanguageModelPass(parameters: parameters)
        let plain = try pass.run(Self.batch)
        let teacher = try TinyModels.runtime(parameters)
        let zero = try pass.run(Self.batch, distillation: .init(teacher: teacher, weight: 0, temperature: 3))
        #expect(abs(zero.loss - plain.loss) < 1e-9)
        let soft = try pass.run(Self.batch, distillation: .init(teacher: teacher, weight: 1, temperature: 2))
        #expect(abs(soft.loss) < 1e-5)
        let largest = soft.gradients!.values.flatMap { $0 }.map(abs).max()!
        #expect(largest < 1e-4)
        #expect(throws: TrainingError.self) { try LanguageModelPass.Distillation(teacher: teacher, weight: 1.5) }
    }

    @Test("the training forward pass gives the runtime's loss on the same weights")
    func forwardParity() throws {
        for parameters in [try TinyModels.heterogeneous(), try TinyModels.tied()] {
            let scorer = SequenceScorer(model: try TinyModels.runtime(parameters))
            let values = try scorer.tokenLogProbabilities(Self.batch).flatMap { $0 }
            let runtimeLoss = -values.reduce(0, +) / Double(values.count)
            let result = try LanguageModelPass(parameters: parameters).run(Self.batch, backward: false)
            #expect(result.tokens == values.count)
            #expect(abs(result.loss - runtimeLoss) < 1e-5 * runtimeLoss, "training \(result.loss) vs runtime \(runtimeLoss)")
        }
    }

    @Test("on the shipped model, the training forward pass gives the runtime's loss, and a step along the gradient lowers it")
    func realModel() throws {
        let directory = try ConvertedModel.directory()
        let parameters = try TrainableParameters(directory: directory)
        let batch = [[504, 3575, 282, 260, 20306, 281, 4471, 3210, 30, 378, 2032, 314], [1206, 1689, 304, 260, 1439, 30, 378, 1113]]
        let values = try SequenceScorer(model: LlamaModel(directory: directory)).tokenLogProbabilities(batch).flatMap { $0 }
        let runtimeLoss = -values.reduce(0, +) / Double(values.count)
        let result = try LanguageModelPass(parameters: parameters).run(batch)
        #expect(abs(result.loss - runtimeLoss) < 1e-5 * runtimeLoss, "training \(result.loss) vs runtime \(runtimeLoss)")
        // First-order check on the whole gradient at once: L(θ − ηg) ≈ L(θ) − η‖g‖².
        let gradients = try #require(result.gradients)
        let squaredNorm = gradients.values.reduce(0.0) { $0 + $1.reduce(0.0) { $0 + Double($1) * Double($1) } }
        let rate = 1e-3 / squaredNorm.squareRoot()
        var stepped = parameters
        for (name, g) in gradients { for i in g.indices { stepped.values[name]![i] -= Float(rate) * g[i] } }
        let after = try LanguageModelPass(parameters: stepped).run(batch, backward: false).loss
        let predicted = rate * squaredNorm
        #expect(after < result.loss)
        #expect(abs((result.loss - after) - predicted) < 0.1 * predicted, "decrease \(result.loss - after), predicted \(predicted)")
    }

    @Test("on the shipped model, the loss and every tensor's gradient equal PyTorch autograd's (float64) within 1e-3 relative")
    func pytorchParity() throws {
        // fixtures/scripts/gradient_reference.py wrote the reference.
        let reference = try #require(try Assets.fixtureJSON("smollm2-135m-gradients.json") as? [String: Any])
        let batch = try #require(reference["batch"] as? [[Int]])
        let tensors = try #require(reference["tensors"] as? [String: [String: Any]])
        let parameters = try TrainableParameters(directory: ConvertedModel.directory())
        let result = try LanguageModelPass(parameters: parameters).run(batch)
        let referenceLoss = try #require(reference["loss"] as? Double)
        #expect(abs(result.loss - referenceLoss) < 1e-4 * referenceLoss, "loss \(result.loss) vs PyTorch \(referenceLoss)")
        let gradients = try #require(result.gradients)
        #expect(Set(tensors.keys) == Set(gradients.keys))
        var worst = (name: "", error: 0.0)
        for (name, expected) in tensors {
            let g = try #require(gradients[name])
            let norm = g.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            let referenceNorm = expected["norm"] as! Double
            #expect(abs(norm - referenceNorm) <= 1e-3 * referenceNorm, "\(name): norm \(norm) vs PyTorch \(referenceNorm)")
            // Sampled entries, relative to their own size or (near zero) to the tensor's RMS.
            let rms = referenceNorm / Double(g.count).squareRoot()
            for (index, value) in zip(expected["indices"] as! [Int], expected["values"] as! [Double]) {
                let error = abs(Double(g[index]) - value) / (abs(value) + rms)
                if error > worst.error { worst = (name + "[\(index)]", error) }
            }
        }
        #expect(worst.error <= 1e-3, "largest relative difference \(worst.error) at \(worst.name)")
    }

    @Test("bad batches are refused with a clear error")
    func badBatches() throws {
        let pass = try LanguageModelPass(parameters: TinyModels.tied())
        #expect(throws: TrainingError.sequenceTooShort) { try pass.run([[1]]) }
        #expect(throws: TrainingError.sequenceTooShort) { try pass.run([]) }
        #expect(throws: TrainingError.tokenOutOfRange(token: 40, vocabularySize: 40)) { try pass.run([[1, 40]]) }
    }
}

@Suite("Distillation from the teacher's cached top-k logits")
struct TeacherCacheTests {
    static let batch = GradientTests.batch

    static func teacher(for student: TrainableParameters) throws -> LlamaModel {
        var config = student.config
        config.hubLayers = nil
        config.numHiddenLayers = 2
        return try TinyModels.runtime(TinyModels.random(config, seed: 9))
    }

    @Test("with k = the vocabulary, the cache gives the on-the-fly loss and gradients")
    func fullCacheIsExact() throws {
        let student = try TinyModels.heterogeneous()
        let teacher = try Self.teacher(for: student)
        let cache = try TeacherLogitCache.build(teacher: teacher, teacherSHA256: SHA256Digest.of(Data("t".utf8)), sequences: Self.batch,
                                                k: student.config.vocabSize, batch: 1)
        let pass = try LanguageModelPass(parameters: student)
        let live = try pass.run(Self.batch, distillation: .init(teacher: teacher, weight: 0.7, temperature: 2))
        let cached = try pass.run(Self.batch, distillation: .init(cache: cache, weight: 0.7))
        #expect(abs(live.loss - cached.loss) <= 1e-5 * abs(live.loss))
        for (name, gradient) in try #require(live.gradients) {
            let other = try #require(cached.gradients?[name])
            let scale = gradient.map(abs).max()! + 1e-12
            #expect(zip(gradient, other).allSatisfy { abs($0 - $1) <= 1e-4 * scale }, "\(name)")
        }
    }

    @Test("building the cache reports every batch, and stops after the batch in flight when asked, keeping nothing")
    func buildReportsAndStops() throws {
        let teacher = try Self.teacher(for: TinyModels.heterogeneous())
        let sequences = Self.batch + Self.batch.reversed(), digest = SHA256Digest.of(Data("t".utf8))
        var heard: [[Int]] = []
        let cache = try TeacherLogitCache.build(teacher: teacher, teacherSHA256: digest, sequences: sequences, k: 3, batch: 1) { heard.append([$0, $1]) }
        #expect(heard == (1 ... 4).map { [$0, 4] })
        #expect(cache.sequences == 4)
        var asked = 0, done = 0
        #expect(throws: FineTuneError.interrupted(step: 0, checkpoint: nil)) {
            _ = try TeacherLogitCache.build(teacher: teacher, teacherSHA256: digest, sequences: sequences, k: 3, batch: 1,
                                            progress: { d, _ in done = d }, shouldStop: { asked += 1; return asked == 2 })
        }
        #expect(asked == 2 && done == 2, "stopped after the second batch, the one in flight when asked")
    }

    @Test("with a small k, every parameter matches finite differences of the top-k-plus-rest loss")
    func topKGradients() throws {
        let student = try TinyModels.heterogeneous()
        let cache = try TeacherLogitCache.build(teacher: Self.teacher(for: student), teacherSHA256: SHA256Digest.of(Data("t".utf8)),
                                                sequences: Self.batch, k: 5)
        let distillation = try LanguageModelPass.Distillation(cache: cache, weight: 0.7)
        try GradientTests().check(student, batch: Self.batch, distillation: distillation)
        // It is a different loss from the full one (the tail of the teacher's distribution is cut).
        let full = try LanguageModelPass(parameters: student).run(Self.batch, backward: false,
                                                                  distillation: .init(teacher: Self.teacher(for: student), weight: 0.7, temperature: 2))
        let sparse = try LanguageModelPass(parameters: student).run(Self.batch, backward: false, distillation: distillation)
        #expect(abs(full.loss - sparse.loss) > 1e-3)
    }

    @Test("a model distilled from its own top-k cache has zero loss and zero gradient; the cache fixes the temperature")
    func selfDistillationIsStill() throws {
        let student = try TinyModels.heterogeneous()
        // k = 3 of a 32-token vocabulary leaves much of the mass in the rest class at T = 3, so
        // renormalising over the top k (the old form) would give a large loss and gradient here.
        let cache = try TeacherLogitCache.build(teacher: TinyModels.runtime(student), teacherSHA256: SHA256Digest.of(Data("s".utf8)),
                                                sequences: Self.batch, k: 3, temperature: 3)
        #expect(cache.meanTopMass > 0 && cache.meanTopMass < 0.9)
        let distillation = try LanguageModelPass.Distillation(cache: cache, weight: 1)
        #expect(distillation.temperature == 3)
        let pass = try LanguageModelPass(parameters: student)
        let result = try pass.run(Self.batch, distillation: distillation)
        #expect(abs(result.loss) < 1e-5, "KL of a model to itself: \(result.loss)")
        // Against the cross-entropy gradient's scale: the soft gradient is zero up to rounding.
        let hard = try #require(try pass.run(Self.batch).gradients)
        for (name, gradient) in try #require(result.gradients) {
            let scale = hard[name]!.map(abs).max()! + 1e-12
            #expect(gradient.allSatisfy { abs($0) <= 1e-4 * scale }, "\(name)")
        }
    }

    @Test("a student far more peaked than its teacher (rest ratio beyond a Float) still gets a finite loss and gradient")
    func peakedStudentStaysFinite() throws {
        let teacher = try TinyModels.heterogeneous()
        let cache = try TeacherLogitCache.build(teacher: TinyModels.runtime(teacher), teacherSHA256: SHA256Digest.of(Data("p".utf8)),
                                                sequences: Self.batch, k: 3, temperature: 1)
        // The same model with its head scaled up: the same top tokens, but nearly all of the
        // student's mass on them, so teacher rest / student rest is far past Float's range and
        // the tail's target must be formed in log space.
        var student = teacher
        student.values[student.headName] = student.values[student.headName]!.map { $0 * 400 }
        let result = try LanguageModelPass(parameters: student).run(Self.batch, distillation: .init(cache: cache, weight: 1))
        #expect(result.loss.isFinite && result.loss > 1, "loss \(result.loss)")
        for (name, gradient) in try #require(result.gradients) {
            #expect(gradient.allSatisfy { $0.isFinite }, "\(name)")
        }
    }

    @Test("the top k are the k largest, largest first; the file round-trips and is refused when truncated or read with other tokens")
    func fileAndLookup() throws {
        var random = SplitMix64(seed: 3)
        let values = (0 ..< 500).map { _ in Float(random.next() % 1000) / 10 }
        #expect(TeacherLogitCache.largest(values, offset: 0, count: 500, k: 7)
                == Array(values.indices.sorted { values[$0] > values[$1] || (values[$0] == values[$1] && $0 < $1) }.prefix(7)))
        let student = try TinyModels.heterogeneous()
        let digest = SHA256Digest.of(Data("teacher".utf8))
        let cache = try TeacherLogitCache.build(teacher: Self.teacher(for: student), teacherSHA256: digest, sequences: Self.batch, k: 4)
        #expect(cache.positions == 6 + 4 && cache.sequences == 2)
        let directory = try TemporaryDirectory()
        let file = directory.path("cache")
        try cache.write(to: file)
        let loaded = try TeacherLogitCache.load(from: file)
        #expect(loaded.header == cache.header && loaded.ids == cache.ids && loaded.logits == cache.logits
                && loaded.logPartitions == cache.logPartitions && loaded.header.temperature == 2)
        // The second sequence alone, by its index.
        let rows = try loaded.rows(first: 1, matching: [Self.batch[1]])
        #expect(Array(rows.ids) == Array(cache.ids.suffix(4 * 4)))
        #expect(throws: TrainingError.self) { try loaded.rows(first: 0, matching: [Self.batch[1]]) }
        #expect(throws: TrainingError.self) { try loaded.rows(first: 1, matching: Self.batch) }
        #expect(!loaded.matches(teacherSHA256: SHA256Digest.of(Data("other".utf8)), temperature: 2, stream: Self.batch[0], sequences: 1, length: 7))
        #expect(!loaded.matches(teacherSHA256: digest, temperature: 1, stream: Self.batch[0], sequences: 1, length: 7))
        #expect(loaded.matches(teacherSHA256: digest, temperature: 2, stream: Self.batch[0], sequences: 1, length: 7))
        let bytes = try Data(contentsOf: file)
        try bytes.prefix(bytes.count - 3).write(to: file)
        #expect(throws: TrainingError.self) { try TeacherLogitCache.load(from: file) }
        #expect(throws: TrainingError.self) {
            try TeacherLogitCache.build(teacher: Self.teacher(for: student), teacherSHA256: digest, sequences: Self.batch, k: 0)
        }
    }
}
