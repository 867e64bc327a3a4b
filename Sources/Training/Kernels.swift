import COpenBLAS
import Foundation
import Transformer

/// The dense pieces of the forward and backward pass, over row-major buffers. Every matrix is
/// stored as PyTorch stores a linear layer's weight, W [out, in], so y = x·Wᵀ.
enum TrainingKernels {
    /// y[rows, out] = x[rows, in]·Wᵀ (+ y when accumulating).
    static func linear(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                       rows: Int, inputs: Int, outputs: Int, accumulate: Bool = false) {
        gemm(false, true, m: rows, n: outputs, k: inputs, x, inputs, w, inputs, beta: accumulate ? 1 : 0, y, outputs)
    }

    /// C[m, n] = alpha·op(A)·op(B) + beta·C on row-major blocks with their own row strides
    /// (lda, ldb, ldc): the attention's per-head products, which address parts of wider buffers.
    static func gemm(_ transposeA: Bool, _ transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                     _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                     beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    // Causal attention's products for one head of one sequence of t rows, cut at half = t / 2:
    // the first half's rows see only the first half's columns, so the masked top-right quarter
    // of the t × t matrix is never computed (as the runtime's prefill cuts its blocks). The
    // t × t matrices are dense with row stride t; the rest carry their own strides.

    /// S[t, t] = alpha·A·Bᵀ below the cut (A, B: [t, k]); the top-right quarter is left as it is.
    static func causalScores(t: Int, k: Int, alpha: Float = 1, _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                             into s: UnsafeMutablePointer<Float>) {
        let half = t / 2
        gemm(false, true, m: half, n: half, k: k, alpha: alpha, a, lda, b, ldb, beta: 0, s, t)
        gemm(false, true, m: t - half, n: t, k: k, alpha: alpha, a + half * lda, lda, b, ldb, beta: 0, s + half * t, t)
    }

    /// C[t, n] = alpha·P·B + beta·C for a causal P[t, t] (zero above the diagonal), B: [t, n].
    static func causalProduct(t: Int, n: Int, alpha: Float = 1, _ p: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ ldb: Int,
                              beta: Float, into c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        let half = t / 2
        gemm(false, false, m: half, n: n, k: half, alpha: alpha, p, t, b, ldb, beta: beta, c, ldc)
        gemm(false, false, m: t - half, n: n, k: t, alpha: alpha, p + half * t, t, b, ldb, beta: beta, c + half * ldc, ldc)
    }

    /// C[t, n] += alpha·Pᵀ·B for a causal P[t, t]: C's first half takes every row of P's first
    /// half of columns, its second half only the rows of the second half.
    static func causalTransposedProduct(t: Int, n: Int, alpha: Float = 1, _ p: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ ldb: Int,
                                        into c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        let half = t / 2
        gemm(true, false, m: half, n: n, k: t, alpha: alpha, p, t, b, ldb, beta: 1, c, ldc)
        gemm(true, false, m: t - half, n: n, k: t - half, alpha: alpha, p + half * t + half, t, b + half * ldb, ldb, beta: 1,
             c + half * ldc, ldc)
    }

    /// The backward of y = x·Wᵀ: dx += dy·W and dW += dyᵀ·x.
    static func linearBackward(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                               dx: UnsafeMutablePointer<Float>, dw: UnsafeMutablePointer<Float>, rows: Int, inputs: Int, outputs: Int) {
        gemm(false, false, m: rows, n: inputs, k: outputs, dy, outputs, w, inputs, beta: 1, dx, inputs)
        gemm(true, false, m: outputs, n: inputs, k: rows, dy, outputs, x, inputs, beta: 1, dw, inputs)
    }

    /// y = x / rms(x) · g per row; returns 1/rms per row (what the backward needs). Rows are
    /// independent, so they run on every BLAS thread.
    static func rmsNorm(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                        rows: Int, width: Int, epsilon: Float) -> [Float] {
        var inverses = [Float](repeating: 0, count: rows)
        inverses.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let (out, x, g, y) = (buffer.baseAddress!, x, g, y)
            Parallel.rows(rows, cost: rows * width) { r in
                var sum: Float = 0
                for c in 0 ..< width { sum += x[r * width + c] * x[r * width + c] }
                let inverse = 1 / (sum / Float(width) + epsilon).squareRoot()
                for c in 0 ..< width { y[r * width + c] = x[r * width + c] * inverse * g[c] }
                out[r] = inverse
            }
        }
        return inverses
    }

    /// Rows a partial sum of the RMSNorm scale's gradient covers. The partials are fixed by
    /// the rows, not by the threads, and summed in order, so the result is the same bits at
    /// any thread count (a resumed run must repeat an uninterrupted one exactly).
    static let reductionRows = 32

    /// With x̂ = x/rms: dg += Σ_rows dy·x̂; dx += (dx̂ − x̂·mean(dx̂·x̂)) / rms, where dx̂ = dy·g.
    static func rmsNormBackward(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, inverse: [Float],
                                dx: UnsafeMutablePointer<Float>, dg: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
        let chunks = (rows + reductionRows - 1) / reductionRows
        var partials = [Float](repeating: 0, count: chunks * width)
        partials.withUnsafeMutableBufferPointer { buffer in inverse.withUnsafeBufferPointer { inverse in
            nonisolated(unsafe) let (partials, inverse, dy, x, g, dx) = (buffer.baseAddress!, inverse.baseAddress!, dy, x, g, dx)
            Parallel.rows(chunks, cost: rows * width) { chunk in
                let partial = partials + chunk * width
                for r in chunk * reductionRows ..< min(rows, (chunk + 1) * reductionRows) {
                    let s = inverse[r]
                    var dot: Float = 0
                    for c in 0 ..< width {
                        let xhat = x[r * width + c] * s
                        partial[c] += dy[r * width + c] * xhat
                        dot += dy[r * width + c] * g[c] * xhat
                    }
                    let mean = dot / Float(width)
                    for c in 0 ..< width {
                        let xhat = x[r * width + c] * s
                        dx[r * width + c] += (dy[r * width + c] * g[c] - xhat * mean) * s
                    }
                }
            }
        } }
        for chunk in 0 ..< chunks {
            for c in 0 ..< width { dg[c] += partials[chunk * width + c] }
        }
    }

    /// Elements a parallel elementwise loop hands a thread at a time.
    static let elementChunk = 1 << 14

    /// hidden = silu(gate) ⊙ up, elementwise.
    static func swiglu(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, hidden: UnsafeMutablePointer<Float>, count: Int) {
        nonisolated(unsafe) let (gate, up, hidden) = (gate, up, hidden)
        Parallel.chunks(count, size: elementChunk) { range in
            var i = range.lowerBound
            while i + 8 <= range.upperBound {
                let g = Kernels.load(gate + i)
                Kernels.store(g * sigmoid(g) * Kernels.load(up + i), hidden + i)
                i += 8
            }
            for i in i ..< range.upperBound {
                let g = gate[i]
                hidden[i] = g * sigmoid(g) * up[i]
            }
        }
    }

    /// The backward of `swiglu`: dUp = dHidden · silu(gate), dGate = dHidden · up · silu′(gate),
    /// with silu′(g) = σ(g)·(1 + g·(1 − σ(g))).
    static func swigluBackward(dHidden: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                               dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>, count: Int) {
        nonisolated(unsafe) let (dHidden, gate, up, dGate, dUp) = (dHidden, gate, up, dGate, dUp)
        Parallel.chunks(count, size: elementChunk) { range in
            var i = range.lowerBound
            while i + 8 <= range.upperBound {
                let g = Kernels.load(gate + i), s = sigmoid(g), d = Kernels.load(dHidden + i)
                Kernels.store(d * g * s, dUp + i)
                Kernels.store(d * Kernels.load(up + i) * s * (1 + g * (1 - s)), dGate + i)
                i += 8
            }
            for i in i ..< range.upperBound {
                let g = gate[i], s = sigmoid(g)
                dUp[i] = dHidden[i] * g * s
                dGate[i] = dHidden[i] * up[i] * s * (1 + g * (1 - s))
            }
        }
    }

    /// σ(x) with the runtime's exponential, in eight lanes and (for a range's tail) in one.
    @inline(__always) static func sigmoid(_ x: SIMD8<Float>) -> SIMD8<Float> { 1 / (1 + Kernels.exp(-x)) }
    @inline(__always) static func sigmoid(_ x: Float) -> Float { 1 / (1 + Kernels.exp(-x)) }

    /// log Σ_j exp(x_j / temperature), as `shiftedExpSum` sums it.
    static func logSumExp(_ x: UnsafePointer<Float>, count: Int, temperature: Double) -> Double {
        let (top, sum) = shiftedExpSum(x, count: count, temperature: temperature)
        return Double(top) + log(sum)
    }

    /// The shift (max_j x_j / temperature) and Σ_j exp(x_j / temperature − shift) that
    /// `logSumExp` takes its log of, for callers that sum some of the same terms again: a term
    /// is `Kernels.exp(x_j · (1 / temperature) − shift)`, the runtime's eight-lane exponential,
    /// whose scalar form gives the lanes' bits. The terms are summed in fp32 within blocks of 64
    /// and the blocks in double, so a 49k vocabulary loses nothing that matters.
    static func shiftedExpSum(_ x: UnsafePointer<Float>, count: Int, temperature: Double) -> (top: Float, sum: Double) {
        let inverse = Float(1 / temperature)
        var lanes = SIMD8<Float>(repeating: -.infinity)
        var j = 0
        while j + 8 <= count { lanes = Kernels.maximum(lanes, Kernels.load(x + j) * inverse); j += 8 }
        var top = lanes.max()
        while j < count { top = max(top, x[j] * inverse); j += 1 }
        var sum = 0.0
        j = 0
        while j + 64 <= count {
            var block = SIMD8<Float>(repeating: 0)
            for v in stride(from: j, to: j + 64, by: 8) { block += Kernels.exp(Kernels.load(x + v) * inverse - top) }
            sum += Double(block.sum())
            j += 64
        }
        while j < count { sum += Double(Kernels.exp(x[j] * inverse - top)); j += 1 }
        return (top, sum)
    }

    /// x_j ← a·exp(x_j − hardShift) + b·exp(x_j·inverse − softShift) for every j, eight lanes
    /// at a time: the gradient of cross-entropy (a softmax at T = 1) mixed with a softmax at
    /// T = 1/inverse. With b = 0 only the first term is computed.
    static func softmaxGradient(_ x: UnsafeMutablePointer<Float>, count: Int, hardScale a: Float, hardShift: Float,
                                softScale b: Float = 0, inverse: Float = 1, softShift: Float = 0) {
        var j = 0
        if b == 0 {
            while j + 8 <= count { Kernels.store(a * Kernels.exp(Kernels.load(x + j) - hardShift), x + j); j += 8 }
            while j < count { x[j] = a * Kernels.exp(x[j] - hardShift); j += 1 }
            return
        }
        while j + 8 <= count {
            let v = Kernels.load(x + j)
            Kernels.store(a * Kernels.exp(v - hardShift) + b * Kernels.exp(v * inverse - softShift), x + j)
            j += 8
        }
        while j < count { x[j] = a * Kernels.exp(x[j] - hardShift) + b * Kernels.exp(x[j] * inverse - softShift); j += 1 }
    }
}
