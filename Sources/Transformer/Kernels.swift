import COpenBLAS
import Foundation

/// The numerical building blocks. Matrix products go to BLAS; the rest are plain loops over
/// raw pointers (they touch each activation once, so memory, not arithmetic, bounds them).
/// The eight-lane `load`, `store` and `exp` are public for the training module's loops.
public enum Kernels {
    /// Y[T, out] = X[T, in] · Wᵀ (W is [out, in]), with X and Y rows `ldx` / `ldy` apart.
    /// Batch size one goes through GEMV: decoding streams each weight exactly once.
    static func linear(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, _ w: Matrix, _ y: UnsafeMutablePointer<Float>, ldy: Int,
                       accumulate: Bool = false) {
        let beta: Float = accumulate ? 1 : 0
        if let q = w.quantized {
            if rows == 1 {
                QuantizedKernels.gemv(q, x, y, accumulate: accumulate)
                return
            }
            // Widen a tile of weight rows (at most 4 MB of fp32) and multiply it by GEMM.
            let tileRows = min(q.rows, max(64, (1 << 20) / q.columns))
            let tile = FloatBuffer(count: tileRows * q.columns, zeroed: false)
            var first = 0
            while first < q.rows {
                let count = min(tileRows, q.rows - first)
                QuantizedKernels.dequantize(q, rows: first, count: count, into: tile.pointer)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(count), Int32(q.columns), 1,
                            x, Int32(ldx), tile.pointer, Int32(q.columns), beta, y + first, Int32(ldy))
                first += count
            }
            return
        }
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

    /// e^x for eight fp32 lanes without a libm call: Cody–Waite range reduction
    /// x = n·ln2 + r, Cephes' degree-6 polynomial for e^r, and 2^n built in the exponent bits
    /// (n is rounded by the 1.5·2²³ trick, so no float→int conversion stops vectorization).
    /// Relative error below 3e-7; inputs below −87 give 2^-126 · e^r, effectively 0.
    /// The clamp is written with `replacing(with:where:)`: `clamped(lowerBound:upperBound:)`
    /// goes through the generic `pointwiseMin`/`pointwiseMax`, which the compiler leaves as
    /// calls, and that made a 49k-logit softmax about three times slower.
    @inlinable @inline(__always) public static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let low = SIMD8<Float>(repeating: -87.3), high = SIMD8<Float>(repeating: 88.0)
        var clamped = x.replacing(with: low, where: x .< low)
        clamped.replace(with: high, where: clamped .> high)
        let magic = SIMD8<Float>(repeating: 12_582_912)
        let t = clamped * 1.442_695_04 + magic
        let n = t - magic
        let r = clamped - n * 0.693_359_375 + n * 2.121_944_4e-4
        var p = SIMD8<Float>(repeating: 1.987_569_1e-4)
        p = p * r + 1.398_199_9e-3
        p = p * r + 8.333_452e-3
        p = p * r + 4.166_579_6e-2
        p = p * r + 0.166_666_65
        p = p * r + 0.5
        let y = p * r * r + r + 1
        let exponent = (unsafeBitCast(t, to: SIMD8<UInt32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return y * unsafeBitCast(exponent, to: SIMD8<Float>.self)
    }

    /// The same function on one value: a row's tail, or a term that must match the lanes' bits.
    @inlinable @inline(__always) public static func exp(_ x: Float) -> Float { exp(SIMD8(repeating: x))[0] }

    /// The lanes' maxima, inlined (see `exp` on the generic `pointwiseMax`).
    @inlinable @inline(__always) public static func maximum(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        a.replacing(with: b, where: b .> a)
    }

    @inlinable @inline(__always) public static func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }

    @inlinable @inline(__always) public static func store(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    /// gate ← silu(gate) · up = gate / (1 + e^-gate) · up, elementwise.
    static func swiglu(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            let g = load(gate + i)
            store(g / (1 + exp(-g)) * load(up + i), gate + i)
            i += 8
        }
        while i < count {
            gate[i] = gate[i] / (1 + exp(-gate[i])) * up[i]
            i += 1
        }
    }

    /// Softmax of one row in place.
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        var lanes = SIMD8<Float>(repeating: -.infinity)
        var i = 0
        while i + 8 <= count { lanes = maximum(lanes, load(x + i)); i += 8 }
        var maximum = lanes.max()
        while i < count { maximum = max(maximum, x[i]); i += 1 }

        var sums = SIMD8<Float>(repeating: 0)
        i = 0
        while i + 8 <= count {
            let e = exp(load(x + i) - maximum)
            store(e, x + i)
            sums += e
            i += 8
        }
        var sum = sums.sum()
        while i < count { x[i] = exp(x[i] - maximum); sum += x[i]; i += 1 }

        let inverse = 1 / sum
        i = 0
        while i + 8 <= count { store(load(x + i) * inverse, x + i); i += 8 }
        while i < count { x[i] *= inverse; i += 1 }
    }

    /// log Σ exp(x), in double precision so that long vocabularies lose nothing.
    static func logSumExp(_ x: UnsafePointer<Float>, count: Int) -> Double {
        var maximum = -Float.infinity
        for i in 0 ..< count where x[i] > maximum { maximum = x[i] }
        var sum = 0.0
        for i in 0 ..< count { sum += Foundation.exp(Double(x[i] - maximum)) }
        return Double(maximum) + log(sum)
    }

    static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        cblas_saxpy(Int32(count), 1, x, 1, y, 1)
    }
}
