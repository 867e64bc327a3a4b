import COpenBLAS
import Foundation
import Transformer

/// Low-rank adaptation (Hu et al., 2021): a frozen weight W₀ [out, in] is trained as
/// W = W₀ + (α/r)·B·A with A [r, in] and B [out, r]; only A and B learn, so the optimizer
/// holds 2·r·(in + out) values per projection instead of 2·in·out.
public struct LoRASettings: Sendable, Codable, Equatable {
    public static let projections = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

    public var rank: Int
    public var alpha: Double
    /// Which projections get adapters, by their checkpoint names' last part (q_proj, …).
    public var targets: [String]

    public init(rank: Int, alpha: Double? = nil, targets: [String] = LoRASettings.projections) throws {
        guard rank >= 1 else { throw FineTuneError.invalid("LoRA rank must be at least 1 (got \(rank))") }
        let unknown = targets.filter { !Self.projections.contains($0) }
        guard unknown.isEmpty, !targets.isEmpty else {
            throw FineTuneError.invalid("unknown LoRA target \(unknown.joined(separator: ", ")); choose from \(Self.projections.joined(separator: ", "))")
        }
        self.rank = rank
        self.alpha = alpha ?? Double(2 * rank)
        self.targets = targets
    }

    public var scale: Float { Float(alpha / Double(rank)) }

    /// The weights of `parameters` that get adapters, in name order.
    public func adaptedWeights(of parameters: TrainableParameters) -> [String] {
        parameters.values.keys.filter { name in
            targets.contains { name.hasSuffix(".\($0).weight") } && name.hasPrefix("model.layers.")
        }.sorted()
    }
}

/// The trained A and B of every adapted weight, under `<weight>.lora_A` and `<weight>.lora_B`.
///
/// Training runs the ordinary pass on the merged weights W₀ + s·B·A and takes A's and B's
/// gradients from the merged weight's: with G = ∂L/∂W, ∂L/∂A = s·Bᵀ·G and ∂L/∂B = s·G·Aᵀ.
/// That is exact and reuses the one gradient-checked backward pass; it costs the full
/// weight gradient (6N FLOPs a token, as full fine-tuning), where a fused LoRA kernel would
/// skip it, but the optimizer state shrinks from 8 bytes a parameter to a few MB.
public struct LoRAAdapters: Sendable {
    public let settings: LoRASettings
    /// The frozen weights each adapter belongs to, with their shapes [out, in].
    public let shapes: [String: [Int]]
    public var values: [String: [Float]]

    /// A from a seeded Gaussian of standard deviation 1/√in, B zero: the merged model starts
    /// exactly as the parent.
    public init(settings: LoRASettings, base: TrainableParameters, seed: UInt64) {
        self.settings = settings
        var generator = SplitMix64(seed: seed)
        var shapes: [String: [Int]] = [:], values: [String: [Float]] = [:]
        for name in settings.adaptedWeights(of: base) {
            let shape = base.shapes[name]!, (rows, columns) = (shape[0], shape[1])
            shapes[name] = shape
            let deviation = 1 / Double(columns).squareRoot()
            values[name + ".lora_A"] = (0 ..< settings.rank * columns).map { _ in
                // Box–Muller from two uniform draws.
                let u = max(generator.nextUnit(), 1e-300), v = generator.nextUnit()
                return Float(deviation * (-2 * log(u)).squareRoot() * cos(2 * Double.pi * v))
            }
            values[name + ".lora_B"] = [Float](repeating: 0, count: rows * settings.rank)
        }
        self.shapes = shapes
        self.values = values
    }

    /// The adapter tensors with their shapes (A [r, in], B [out, r]).
    public var tensorShapes: [String: [Int]] {
        shapes.reduce(into: [:]) { result, entry in
            result[entry.key + ".lora_A"] = [settings.rank, entry.value[1]]
            result[entry.key + ".lora_B"] = [entry.value[0], settings.rank]
        }
    }

    /// The base with every adapted weight replaced by W₀ + s·B·A.
    public func merged(into base: TrainableParameters) -> TrainableParameters {
        var result = base
        for (name, shape) in shapes {
            let (rows, columns) = (shape[0], shape[1])
            var weight = base.values[name]!
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(columns), Int32(settings.rank), settings.scale,
                        values[name + ".lora_B"]!, Int32(settings.rank), values[name + ".lora_A"]!, Int32(columns), 1, &weight, Int32(columns))
            result.values[name] = weight
        }
        return result
    }

    /// ∂L/∂A and ∂L/∂B from the merged weights' gradients.
    public func gradients(from weightGradients: [String: [Float]]) -> [String: [Float]] {
        var result: [String: [Float]] = [:]
        let r = settings.rank, s = settings.scale
        for (name, shape) in shapes {
            let (rows, columns) = (shape[0], shape[1])
            let g = weightGradients[name]!
            var dA = [Float](repeating: 0, count: r * columns), dB = [Float](repeating: 0, count: rows * r)
            // dA [r, in] = s·Bᵀ [r, out]·G [out, in]; dB [out, r] = s·G [out, in]·Aᵀ [in, r].
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(r), Int32(columns), Int32(rows), s,
                        values[name + ".lora_B"]!, Int32(r), g, Int32(columns), 0, &dA, Int32(columns))
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(r), Int32(columns), s,
                        g, Int32(columns), values[name + ".lora_A"]!, Int32(columns), 0, &dB, Int32(r))
            result[name + ".lora_A"] = dA
            result[name + ".lora_B"] = dB
        }
        return result
    }

    public var parameterCount: Int { values.values.reduce(0) { $0 + $1.count } }
}
