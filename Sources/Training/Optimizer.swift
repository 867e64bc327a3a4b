import Foundation
import Transformer

/// AdamW (Loshchilov & Hutter): Adam's moment estimates with bias correction, and weight
/// decay applied to the weights directly rather than through the gradient. Norm scales are
/// not decayed (decaying them only shrinks the residual stream's scale). State is fp32, one
/// first and one second moment per parameter: 8 bytes a parameter, 1.1 GB for SmolLM2-135M.
public struct AdamW: Sendable {
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-8
    public var weightDecay: Float = 0.01
    public internal(set) var step = 0
    var first: [String: [Float]] = [:]
    var second: [String: [Float]] = [:]

    public init(weightDecay: Float = 0.01) {
        self.weightDecay = weightDecay
    }

    /// One update of every parameter that has a gradient.
    public mutating func update(_ parameters: inout TrainableParameters, gradients: [String: [Float]], learningRate: Float,
                                gradientScale: Float = 1) {
        update(&parameters.values, gradients: gradients, learningRate: learningRate, gradientScale: gradientScale)
    }

    /// One update of every value that has a gradient (full weights, or LoRA's A and B), each
    /// gradient first multiplied by `gradientScale` (clipping's factor: applied here, it costs
    /// no pass of its own over the gradients, and a scale of 1 changes no bit).
    public mutating func update(_ values: inout [String: [Float]], gradients: [String: [Float]], learningRate: Float,
                                gradientScale: Float = 1) {
        step += 1
        let correction1 = 1 - pow(beta1, Float(step)), correction2 = 1 - pow(beta2, Float(step))
        for (name, g) in gradients {
            if first[name] == nil {
                first[name] = [Float](repeating: 0, count: g.count)
                second[name] = [Float](repeating: 0, count: g.count)
            }
            let decay = name.hasSuffix("norm.weight") ? 0 : weightDecay
            let (b1, b2, eps) = (beta1, beta2, epsilon)
            let chunk = 1 << 16
            values[name]!.withUnsafeMutableBufferPointer { w in
                first[name]!.withUnsafeMutableBufferPointer { m in
                    second[name]!.withUnsafeMutableBufferPointer { v in
                        g.withUnsafeBufferPointer { g in
                            // Elementwise, so chunks may run on any thread in any order.
                            nonisolated(unsafe) let (w, m, v, g) = (w, m, v, g)
                            Parallel.chunks(g.count, size: chunk) { range in
                                let end = range.upperBound
                                var i = range.lowerBound
                                // Eight lanes at a time: the same operations in the same order
                                // as the scalar loop below (vector division and square root
                                // round as the scalar ones do), so the bits do not depend on
                                // where a chunk ends; the scalar form ran at a third the speed.
                                while i + 8 <= end {
                                    let gi = Kernels.load(g.baseAddress! + i) * gradientScale
                                    let mi = b1 * Kernels.load(m.baseAddress! + i) + (1 - b1) * gi
                                    let vi = b2 * Kernels.load(v.baseAddress! + i) + (1 - b2) * gi * gi
                                    let update = (mi / correction1) / ((vi / correction2).squareRoot() + eps)
                                    let wi = Kernels.load(w.baseAddress! + i)
                                    Kernels.store(mi, m.baseAddress! + i)
                                    Kernels.store(vi, v.baseAddress! + i)
                                    Kernels.store(wi - learningRate * (update + decay * wi), w.baseAddress! + i)
                                    i += 8
                                }
                                while i < end {
                                    let gi = g[i] * gradientScale
                                    m[i] = b1 * m[i] + (1 - b1) * gi
                                    v[i] = b2 * v[i] + (1 - b2) * gi * gi
                                    let update = (m[i] / correction1) / ((v[i] / correction2).squareRoot() + eps)
                                    w[i] -= learningRate * (update + decay * w[i])
                                    i += 1
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Linear warm-up to the peak rate, then cosine decay to `floor` × peak at the last step.
public struct LearningRateSchedule: Sendable, Codable, Equatable {
    public var peak: Double
    public var warmupSteps: Int
    public var totalSteps: Int
    public var floor: Double

    public init(peak: Double, warmupSteps: Int, totalSteps: Int, floor: Double = 0.1) {
        self.peak = peak
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.floor = floor
    }

    /// The rate for step `step` (0-based).
    public func rate(at step: Int) -> Double {
        if step < warmupSteps { return peak * Double(step + 1) / Double(warmupSteps) }
        let span = max(totalSteps - warmupSteps - 1, 1)
        let progress = min(1, Double(step - warmupSteps) / Double(span))
        return peak * (floor + (1 - floor) * 0.5 * (1 + cos(Double.pi * progress)))
    }
}

/// Clipping of the global gradient norm: `norm` measures it and `scale` gives the factor that
/// brings it down to the maximum, which `AdamW.update(gradientScale:)` applies.
public enum GradientClipping {
    /// The factor that takes a global norm down to `maximum`, or nil when it is within it.
    public static func scale(norm: Double, maximum: Double) -> Float? {
        norm > maximum && norm > 0 ? Float(maximum / norm) : nil
    }

    /// The global L2 norm of every gradient. Each tensor's squares are summed in fixed chunks
    /// on every thread, and the chunks and tensors are added in order (by name: a dictionary's
    /// order changes from process to process), so a resumed run clips exactly as the
    /// uninterrupted one did, at any thread count.
    public static func norm(_ gradients: [String: [Float]]) -> Double {
        gradients.keys.sorted().reduce(0.0) { $0 + squaredSum(gradients[$1]!) }.squareRoot()
    }

    static let chunk = 1 << 16

    static func squaredSum(_ values: [Float]) -> Double {
        let parts = (values.count + chunk - 1) / chunk
        var partials = [Double](repeating: 0, count: parts)
        partials.withUnsafeMutableBufferPointer { partials in values.withUnsafeBufferPointer { values in
            nonisolated(unsafe) let (partials, values) = (partials.baseAddress!, values)
            Parallel.chunks(values.count, size: chunk) { range in
                var sum = 0.0
                for i in range { sum += Double(values[i]) * Double(values[i]) }
                partials[range.lowerBound / chunk] = sum
            }
        } }
        return partials.reduce(0, +)
    }
}
