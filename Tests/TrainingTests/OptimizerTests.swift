import Checkpoint
import Foundation
import HubCore
import HubTestSupport
import Testing
@testable import Training

@Suite("Optimizer and fine-tuning loop")
struct OptimizerTests {
    static func parameters(_ values: [String: [Float]]) throws -> TrainableParameters {
        var p = try TinyModels.tied()
        for (name, v) in values { p.values[name] = v }
        return p
    }

    @Test("AdamW's bias-corrected first steps move each weight by the rate, and decay spares the norms")
    func adamW() throws {
        var p = try Self.parameters(["model.layers.0.mlp.up_proj.weight": [1, 1], "model.norm.weight": [2]])
        var optimizer = AdamW(weightDecay: 0.1)
        let gradients: [String: [Float]] = ["model.layers.0.mlp.up_proj.weight": [0.5, 0], "model.norm.weight": [0]]
        optimizer.update(&p, gradients: gradients, learningRate: 0.1)
        // m̂ = g, v̂ = g²: the step is lr·sign(g), plus lr·decay·w for decayed weights.
        #expect(abs(p.values["model.layers.0.mlp.up_proj.weight"]![0] - (1 - 0.1 * (1 + 0.1))) < 1e-6)
        #expect(abs(p.values["model.layers.0.mlp.up_proj.weight"]![1] - (1 - 0.1 * 0.1)) < 1e-6)
        #expect(p.values["model.norm.weight"]! == [2])
        optimizer.update(&p, gradients: gradients, learningRate: 0.1)
        #expect(abs(p.values["model.layers.0.mlp.up_proj.weight"]![0] - (0.89 - 0.1 * (1 + 0.1 * 0.89))) < 1e-5)
        #expect(optimizer.step == 2)
    }

    @Test("the schedule warms up linearly, peaks, and decays along a cosine to its floor")
    func schedule() {
        let s = LearningRateSchedule(peak: 1e-3, warmupSteps: 4, totalSteps: 20, floor: 0.1)
        #expect(abs(s.rate(at: 0) - 2.5e-4) < 1e-12)
        #expect(abs(s.rate(at: 3) - 1e-3) < 1e-12)
        #expect(abs(s.rate(at: 19) - 1e-4) < 1e-12)
        let decay = (4 ..< 20).map(s.rate)
        #expect(zip(decay, decay.dropFirst()).allSatisfy { $0 > $1 })
        #expect(abs(s.rate(at: 4 + 15 / 2) - 1e-3 * (0.1 + 0.9 * 0.5 * (1 + cos(Double.pi * 7 / 15)))) < 1e-12)
    }

    @Test("clipping measures the global norm over every tensor and gives the factor down to the maximum")
    func clipping() {
        #expect(GradientClipping.norm(["a": [3, 0], "b": [4]]) == 5)
        #expect(GradientClipping.scale(norm: 5, maximum: 1) == 0.2)
        #expect(GradientClipping.scale(norm: 0.3, maximum: 1) == nil)
        // A tensor of several chunks (summed on every thread): the norm of a double-precision sum.
        let long = (0 ..< 200_003).map { Float(sin(Double($0))) }
        let reference = long.reduce(0.0) { $0 + Double($1) * Double($1) } + 25
        #expect(abs(GradientClipping.norm(["long": long, "b": [3, 4]]) - reference.squareRoot()) < 1e-9 * reference.squareRoot())
    }

    @Test("AdamW's eight-lane update gives the scalar formula's bits, with clipping's factor applied inside")
    func adamWLanes() throws {
        // Long enough for several chunks and a tail that is not a multiple of eight.
        let count = 150_005
        let weights = (0 ..< count).map { Float(cos(Double($0) * 0.37)) }
        let gradients = (0 ..< count).map { Float(sin(Double($0) * 1.3)) * 3 }
        let (scale, rate, decay): (Float, Float, Float) = (0.25, 1e-3, 0.01)
        var values = ["w": weights]
        var optimizer = AdamW(weightDecay: decay)
        for _ in 0 ..< 2 { optimizer.update(&values, gradients: ["w": gradients], learningRate: rate, gradientScale: scale) }
        // The scalar formula, written out with the clipped gradient.
        var w = weights, m = [Float](repeating: 0, count: count), v = m
        for step in 1 ... 2 {
            let c1 = 1 - pow(Float(0.9), Float(step)), c2 = 1 - pow(Float(0.999), Float(step))
            for i in 0 ..< count {
                let g = gradients[i] * scale
                m[i] = 0.9 * m[i] + (1 - 0.9) * g
                v[i] = 0.999 * v[i] + (1 - 0.999) * g * g
                w[i] -= rate * ((m[i] / c1) / ((v[i] / c2).squareRoot() + 1e-8) + decay * w[i])
            }
        }
        #expect(values["w"]! == w)
        #expect(optimizer.first["w"]! == m && optimizer.second["w"]! == v)
    }

    @Test("fine-tuning a tiny model on a repeating text drives its loss down")
    func learns() throws {
        var p = try TinyModels.heterogeneous()
        let stream = (0 ..< 4000).map { [3, 17, 5, 29, 8, 1, 12, 30][$0 % 8] }
        var settings = FineTuneSettings(tokens: 3200)
        settings.sequenceLength = 16
        settings.batchSequences = 2
        settings.accumulation = 2
        settings.peakLearningRate = 1e-2
        let curve = try FineTuner(settings: settings).run(&p, stream: stream).curve
        #expect(curve.count == 50)
        #expect(curve.last!.tokens == 3200)
        #expect(curve.suffix(5).map(\.loss).reduce(0, +) / 5 < 0.3 * curve[0].loss, "\(curve[0].loss) → \(curve.last!.loss)")
    }

    @Test("bad settings and a corpus too short for D are refused before any step")
    func refusals() throws {
        #expect(throws: FineTuneError.invalid("tokens must be positive (got 0)")) { try FineTuner(settings: FineTuneSettings(tokens: 0)) }
        var p = try TinyModels.tied()
        let before = p.values
        var settings = FineTuneSettings(tokens: 1000)
        settings.sequenceLength = 10
        #expect(throws: FineTuneError.corpusTooShort(tokens: 500, needed: 1000)) {
            try FineTuner(settings: settings).run(&p, stream: [Int](repeating: 1, count: 500))
        }
        #expect(p.values == before)
    }
}

@Suite("Fine-tune record")
struct FineTuneRecordTests {
    @Test("a record from a real run validates against schemas/finetune.schema.json")
    func validates() throws {
        var p = try TinyModels.tied()
        var settings = FineTuneSettings(tokens: 64)
        settings.sequenceLength = 8
        settings.batchSequences = 2
        let curve = try FineTuner(settings: settings).run(&p, stream: (0 ..< 100).map { $0 % 40 }).curve
        let record = FineTuneRecord(parentCheckpointSHA256: .of(Data("parent".utf8)), settings: settings,
                                    corpus: .init(source: "test", sha256: .of(Data("corpus".utf8)), tokenRange: [0, 64]),
                                    wallSeconds: 0.5, curve: curve)
        let encoder = JSONEncoder()
        let json = try JSONSerialization.jsonObject(with: encoder.encode(record))
        let validator = try JSONSchemaValidator(schemaAt: Assets.repositoryRoot.appendingPathComponent("schemas/finetune.schema.json"))
        #expect(validator.violations(of: json) == [])
        #expect(try JSONDecoder().decode(FineTuneRecord.self, from: encoder.encode(record)) == record)
        #expect(record.steps == 4 && record.tokens == 64)
        #expect(record.loss == "cross-entropy")
        let distilled = FineTuneRecord(parentCheckpointSHA256: .of(Data("parent".utf8)), settings: settings,
                                       corpus: record.corpus, wallSeconds: 0.5, curve: curve,
                                       distillation: .init(teacherCheckpointSHA256: .of(Data("teacher".utf8)), weight: 0.5, temperature: 2))
        #expect(distilled.loss == "distillation")
        #expect(validator.violations(of: try JSONSerialization.jsonObject(with: encoder.encode(distilled))) == [])
        var loraSettings = settings
        loraSettings.lora = try LoRASettings(rank: 4, targets: ["q_proj", "v_proj"])
        loraSettings.seed = 9
        let lora = FineTuneRecord(parentCheckpointSHA256: .of(Data("parent".utf8)), settings: loraSettings, corpus: record.corpus,
                                  wallSeconds: 0.5, curve: curve)
        #expect(lora.method == "lora")
        let loraJSON = try #require(try JSONSerialization.jsonObject(with: encoder.encode(lora)) as? [String: Any])
        #expect(validator.violations(of: loraJSON) == [])
        #expect((loraJSON["settings"] as? [String: Any])?["seed"] as? Int == 9)
        #expect(try JSONDecoder().decode(FineTuneRecord.self, from: encoder.encode(lora)) == lora)
    }
}
