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
    public mutating func update(_ parameters: inout TrainableParameters, gradients: [String: [Float]], learningRate: Float) {
        update(&parameters.values, gradients: gradients, learningRate: learningRate)
    }

    /// One update of every value that has a gradient (full weights, or LoRA's A and B).
    public mutating func update(_ values: inout [String: [Float]], gradients: [String: [Float]], learningRate: Float) {
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
                            Parallel.rows((g.count + chunk - 1) / chunk, cost: g.count) { part in
                                for i in part * chunk ..< min(g.count, (part + 1) * chunk) {
                                    m[i] = b1 * m[i] + (1 - b1) * g[i]
                                    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
                                    let update = (m[i] / correction1) / ((v[i] / correction2).squareRoot() + eps)
                                    w[i] -= learningRate * (update + decay * w[i])
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

public enum GradientClipping {
    /// Scales every gradient so that their global L2 norm is at most `maximum`; returns the
    /// norm before clipping.
    @discardableResult
    public static func clip(_ gradients: inout [String: [Float]], maximum: Double) -> Double {
        // Summed in name order: a dictionary's order changes from process to process, and a
        // resumed run must clip exactly as the uninterrupted one did.
        let norm = gradients.keys.sorted().reduce(0.0) { sum, name in
            gradients[name]!.reduce(sum) { $0 + Double($1) * Double($1) }
        }.squareRoot()
        guard norm > maximum, norm > 0 else { return norm }
        let scale = Float(maximum / norm)
        for name in gradients.keys { gradients[name] = gradients[name]!.map { $0 * scale } }
        return norm
    }
}
