/// Row loops over GGML Q8_0 / Q4_0 blocks (an fp16 scale, then 32 int8 or 32 nibbles), on raw
/// pointers so that this module needs nothing else. It is compiled for AVX2 (`-target-cpu
/// haswell` in Package.swift): at the x86-64 baseline the int8 → fp32 widening has no vector
/// instruction and these loops run at a third of the speed, below what fp32 weights reach;
/// with AVX2 they widen eight lanes at once and stream blocks near the memory bound. Every
/// machine of this project's kind has AVX2; the rest of the runtime keeps the baseline.
public enum BlockKernels {
    @inline(__always) static func scale(_ block: UnsafeRawPointer) -> Float {
        Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self)))
    }

    // Lane by lane, which LLVM turns into one sign-extend and one convert of eight lanes.
    @inline(__always) static func widen(_ q: SIMD8<Int8>) -> SIMD8<Float> {
        var out = SIMD8<Float>()
        out[0] = Float(q[0]); out[1] = Float(q[1]); out[2] = Float(q[2]); out[3] = Float(q[3])
        out[4] = Float(q[4]); out[5] = Float(q[5]); out[6] = Float(q[6]); out[7] = Float(q[7])
        return out
    }

    @inline(__always) static func widen(_ q: SIMD8<UInt8>) -> SIMD8<Float> {
        var out = SIMD8<Float>()
        out[0] = Float(q[0]); out[1] = Float(q[1]); out[2] = Float(q[2]); out[3] = Float(q[3])
        out[4] = Float(q[4]); out[5] = Float(q[5]); out[6] = Float(q[6]); out[7] = Float(q[7])
        return out
    }

    /// y[r] (+)= Σ_b d_b · Σ_i q_bi · x[32b + i] for r in `range`, Q8_0 rows `rowBytes` apart.
    public static func q8_0(_ blocks: UnsafeRawPointer, rowBytes: Int, columns: Int, rows range: Range<Int>,
                            _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let count = columns / 32
        let xs = UnsafeRawPointer(x)
        for r in range {
            var row = blocks + r * rowBytes
            var even = SIMD8<Float>(), odd = SIMD8<Float>()
            for b in 0 ..< count {
                let d = scale(row)
                var acc = widen((row + 2).loadUnaligned(as: SIMD8<Int8>.self)) * xs.loadUnaligned(fromByteOffset: b * 128, as: SIMD8<Float>.self)
                acc += widen((row + 10).loadUnaligned(as: SIMD8<Int8>.self)) * xs.loadUnaligned(fromByteOffset: b * 128 + 32, as: SIMD8<Float>.self)
                acc += widen((row + 18).loadUnaligned(as: SIMD8<Int8>.self)) * xs.loadUnaligned(fromByteOffset: b * 128 + 64, as: SIMD8<Float>.self)
                acc += widen((row + 26).loadUnaligned(as: SIMD8<Int8>.self)) * xs.loadUnaligned(fromByteOffset: b * 128 + 96, as: SIMD8<Float>.self)
                if b & 1 == 0 { even += acc * d } else { odd += acc * d }
                row += 34
            }
            let total = (even + odd).sum()
            y[r] = accumulate ? y[r] + total : total
        }
    }

    /// The same for Q4_0: byte i of a block holds weight i (low nibble) and weight 16 + i
    /// (high nibble), each offset by 8.
    public static func q4_0(_ blocks: UnsafeRawPointer, rowBytes: Int, columns: Int, rows range: Range<Int>,
                            _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let count = columns / 32
        let xs = UnsafeRawPointer(x)
        let mask = SIMD8<UInt8>(repeating: 0x0F), eight = SIMD8<Float>(repeating: 8)
        for r in range {
            var row = blocks + r * rowBytes
            var even = SIMD8<Float>(), odd = SIMD8<Float>()
            for b in 0 ..< count {
                let d = scale(row)
                let q0 = (row + 2).loadUnaligned(as: SIMD8<UInt8>.self), q1 = (row + 10).loadUnaligned(as: SIMD8<UInt8>.self)
                var acc = (widen(q0 & mask) - eight) * xs.loadUnaligned(fromByteOffset: b * 128, as: SIMD8<Float>.self)
                acc += (widen(q1 & mask) - eight) * xs.loadUnaligned(fromByteOffset: b * 128 + 32, as: SIMD8<Float>.self)
                acc += (widen(q0 &>> 4) - eight) * xs.loadUnaligned(fromByteOffset: b * 128 + 64, as: SIMD8<Float>.self)
                acc += (widen(q1 &>> 4) - eight) * xs.loadUnaligned(fromByteOffset: b * 128 + 96, as: SIMD8<Float>.self)
                if b & 1 == 0 { even += acc * d } else { odd += acc * d }
                row += 18
            }
            let total = (even + odd).sum()
            y[r] = accumulate ? y[r] + total : total
        }
    }
}
