import Foundation
import Testing
@testable import Training
import Transformer

/// The loss's eight-lane exponentials: what a 49k-vocabulary row's normalizer and gradient
/// are computed with on every training step.
@Suite("Loss kernels")
struct LossKernelTests {
    /// A vocabulary-sized row of logits spread over [−40, 30], with a length that leaves a tail
    /// past the last full block of 64 and of 8.
    static func row(count: Int = 49_157) -> [Float] {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        return (0 ..< count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return -40 + 70 * Float(state >> 40) / Float(1 << 24)
        }
    }

    @Test("the normalizer at T = 1 and T = 2 equals a double-precision sum of libm's exponentials within 1e-6")
    func normalizer() {
        let x = Self.row()
        for temperature in [1.0, 2.0] {
            let (top, sum) = x.withUnsafeBufferPointer { TrainingKernels.shiftedExpSum($0.baseAddress!, count: x.count, temperature: temperature) }
            let exactTop = x.map { Double($0) / temperature }.max()!
            let exact = x.reduce(0.0) { $0 + Foundation.exp(Double($1) / temperature - exactTop) }
            #expect(abs(Double(top) - exactTop) < 1e-5)
            #expect(abs((Double(top) + log(sum)) - (exactTop + log(exact))) < 1e-6 * abs(exactTop + log(exact)) + 1e-6)
        }
    }

    @Test("one term recomputed with the scalar Kernels.exp has the lanes' bits, so a sum over some tokens subtracts exactly")
    func termsMatchTheLanes() {
        let x = Self.row(count: 4096)
        let inverse = Float(1 / 2.0)
        let (top, sum) = x.withUnsafeBufferPointer { TrainingKernels.shiftedExpSum($0.baseAddress!, count: x.count, temperature: 2) }
        // The same terms one at a time, summed in the kernel's order (fp32 blocks of 64, then double).
        var again = 0.0
        for block in stride(from: 0, to: x.count, by: 64) {
            var lanes = SIMD8<Float>(repeating: 0)
            for v in stride(from: block, to: block + 64, by: 8) {
                for lane in 0 ..< 8 { lanes[lane] += Kernels.exp(x[v + lane] * inverse - top) }
            }
            again += Double(lanes.sum())
        }
        #expect(again == sum)
    }

    @Test("the mixed softmax gradient equals its formula in double precision within 1e-6 relative, with and without the soft term")
    func gradient() {
        let x = Self.row(count: 1003)
        let (a, hardShift, b, inverse, softShift): (Float, Float, Float, Float, Float) = (0.25, 31, 0.125, 0.5, 16)
        var mixed = x, hardOnly = x
        TrainingKernels.softmaxGradient(&mixed, count: x.count, hardScale: a, hardShift: hardShift, softScale: b, inverse: inverse,
                                        softShift: softShift)
        TrainingKernels.softmaxGradient(&hardOnly, count: x.count, hardScale: a, hardShift: hardShift)
        for j in x.indices {
            // The arguments as the kernel rounds them to fp32; the rest in double.
            let hard = Double(a) * Foundation.exp(Double(x[j] - hardShift))
            let soft = Double(b) * Foundation.exp(Double(x[j] * inverse - softShift))
            #expect(abs(Double(hardOnly[j]) - hard) <= 1e-6 * hard + 1e-30)
            #expect(abs(Double(mixed[j]) - (hard + soft)) <= 1e-6 * (hard + soft) + 1e-30)
        }
    }
}
