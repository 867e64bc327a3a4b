import COpenBLAS
import Foundation

/// The numerical building blocks. Matrix products go to BLAS; the rest are plain loops over
/// raw pointers (they touch each activation once, so memory, not arithmetic, bounds them).
enum Kernels {
    /// Y[T, out] = X[T, in] · Wᵀ (W is [out, in]), with X and Y rows `ldx` / `ldy` apart.
    /// Batch size one goes through GEMV: decoding streams each weight exactly once.
    static func linear(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, _ w: Matrix, _ y: UnsafeMutablePointer<Float>, ldy: Int,
                       accumulate: Bool = false) {
        let beta: Float = accumulate ? 1 : 0
        if rows == 1 {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(w.rows), Int32(w.columns), 1, w.data, Int32(w.columns), x, 1, beta, y, 1)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(w.rows), Int32(w.columns), 1,
                        x, Int32(ldx), w.data, Int32(w.columns), beta, y, Int32(ldy))
        }
    }

    /// y = x / sqrt(mean(x²) + eps) · weight, row by row, as transformers' LlamaRMSNorm does in fp32.
    static func rmsNorm(_ x: UnsafePointer<Float>, rows: Int, width: Int, weight: UnsafePointer<Float>, epsilon: Float,
                        into y: UnsafeMutablePointer<Float>) {
        for r in 0 ..< rows {
            let xr = x + r * width, yr = y + r * width
            let sumOfSquares = cblas_sdot(Int32(width), xr, 1, xr, 1)
            let scale = 1 / (sumOfSquares / Float(width) + epsilon).squareRoot()
            for i in 0 ..< width { yr[i] = weight[i] * (xr[i] * scale) }
        }
    }

    /// gate ← silu(gate) · up, elementwise.
    static func swiglu(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        for i in 0 ..< count {
            let g = gate[i]
            gate[i] = g / (1 + expf(-g)) * up[i]
        }
    }

    /// Softmax of one row in place.
    static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var maximum = -Float.infinity
        for i in 0 ..< count where x[i] > maximum { maximum = x[i] }
        var sum: Float = 0
        for i in 0 ..< count {
            let e = expf(x[i] - maximum)
            x[i] = e
            sum += e
        }
        let inverse = 1 / sum
        for i in 0 ..< count { x[i] *= inverse }
    }

    /// log Σ exp(x), in double precision so that long vocabularies lose nothing.
    static func logSumExp(_ x: UnsafePointer<Float>, count: Int) -> Double {
        var maximum = -Float.infinity
        for i in 0 ..< count where x[i] > maximum { maximum = x[i] }
        var sum = 0.0
        for i in 0 ..< count { sum += exp(Double(x[i] - maximum)) }
        return Double(maximum) + log(sum)
    }

    static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        cblas_saxpy(Int32(count), 1, x, 1, y, 1)
    }
}
