import Dispatch

/// Turns GGML block encodings into fp32. The arithmetic mirrors ggml's reference
/// `dequantize_row_*` functions operation for operation (products and sums in the same order,
/// no fused multiply-add), so results are bit-identical to ggml and to the `gguf` Python package.
public enum Dequantizer {
    /// Dequantizes `source` (a whole tensor) into `output`, splitting large tensors across cores.
    public static func dequantize(_ source: UnsafeRawBufferPointer, type: GGMLType, tensor: String,
                                  into output: UnsafeMutableBufferPointer<Float>) throws(GGUFError) {
        guard type.isDequantizable else { throw .cannotDequantize(tensor: tensor, type: type) }
        let blocks = output.count / type.blockSize
        precondition(blocks * type.blockSize == output.count && blocks * type.bytesPerBlock == source.count,
                     "tensor '\(tensor)': \(source.count) bytes of \(type) cannot hold \(output.count) values")
        let chunkBlocks = max(1, (1 << 20) / type.blockSize)
        let chunks = (blocks + chunkBlocks - 1) / chunkBlocks
        // Chunks write disjoint ranges of the output, so sharing the buffers across threads is safe.
        nonisolated(unsafe) let out = output
        nonisolated(unsafe) let input = source
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let first = chunk * chunkBlocks
            let count = min(chunkBlocks, blocks - first)
            let src = input.baseAddress! + first * type.bytesPerBlock
            let dst = out.baseAddress! + first * type.blockSize
            decode(type, src, dst, blocks: count)
        }
    }

    /// Decodes `blocks` consecutive blocks of `type` (elements, for the float types) from `src`
    /// into `dst`, on the calling thread: what a caller that splits its own work uses (the
    /// runtime widening tiles of a quantized matrix). `type` must be dequantizable.
    public static func decode(_ type: GGMLType, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int) {
        switch type {
        case .f32: dst.update(from: src.assumingMemoryBound(to: Float.self), count: blocks)
        case .f16: for i in 0 ..< blocks { dst[i] = half(src, i * 2) }
        case .bf16: for i in 0 ..< blocks { dst[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16) }
        case .q8_0: q8_0(src, dst, blocks)
        case .q4_0: q4_0(src, dst, blocks)
        case .q4_1: q4_1(src, dst, blocks)
        case .q5_0: q5_0(src, dst, blocks)
        case .q5_1: q5_1(src, dst, blocks)
        case .q4_K: q4_K(src, dst, blocks)
        case .q5_K: q5_K(src, dst, blocks)
        case .q6_K: q6_K(src, dst, blocks)
        default: preconditionFailure("checked by isDequantizable")
        }
    }

    @inline(__always) static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }

    // block_q8_0 { f16 d; int8 qs[32] }
    private static func q8_0(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for b in 0 ..< blocks {
            let block = src + b * 34
            let d = half(block, 0)
            let qs = (block + 2).assumingMemoryBound(to: Int8.self)
            let out = y + b * 32
            for j in 0 ..< 32 { out[j] = Float(qs[j]) * d }
        }
    }

    // block_q4_0 { f16 d; uint8 qs[16] }: low nibbles are values 0..15, high nibbles 16..31.
    private static func q4_0(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for b in 0 ..< blocks {
            let block = src + b * 18
            let d = half(block, 0)
            let qs = (block + 2).assumingMemoryBound(to: UInt8.self)
            let out = y + b * 32
            for j in 0 ..< 16 {
                out[j] = Float(Int(qs[j] & 0x0F) - 8) * d
                out[j + 16] = Float(Int(qs[j] >> 4) - 8) * d
            }
        }
    }

    // block_q4_1 { f16 d; f16 m; uint8 qs[16] }
    private static func q4_1(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for b in 0 ..< blocks {
            let block = src + b * 20
            let d = half(block, 0), m = half(block, 2)
            let qs = (block + 4).assumingMemoryBound(to: UInt8.self)
            let out = y + b * 32
            for j in 0 ..< 16 {
                out[j] = Float(qs[j] & 0x0F) * d + m
                out[j + 16] = Float(qs[j] >> 4) * d + m
            }
        }
    }

    // block_q5_0 { f16 d; uint32 qh; uint8 qs[16] }: qh holds the fifth bit of each value.
    private static func q5_0(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for b in 0 ..< blocks {
            let block = src + b * 22
            let d = half(block, 0)
            let qh = UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
            let qs = (block + 6).assumingMemoryBound(to: UInt8.self)
            let out = y + b * 32
            for j in 0 ..< 16 {
                let h0 = Int(((qh >> UInt32(j)) << 4) & 0x10)
                let h1 = Int((qh >> UInt32(j + 12)) & 0x10)
                out[j] = Float((Int(qs[j] & 0x0F) | h0) - 16) * d
                out[j + 16] = Float((Int(qs[j] >> 4) | h1) - 16) * d
            }
        }
    }

    // block_q5_1 { f16 d; f16 m; uint32 qh; uint8 qs[16] }
    private static func q5_1(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for b in 0 ..< blocks {
            let block = src + b * 24
            let d = half(block, 0), m = half(block, 2)
            let qh = UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            let qs = (block + 8).assumingMemoryBound(to: UInt8.self)
            let out = y + b * 32
            for j in 0 ..< 16 {
                let h0 = Int(((qh >> UInt32(j)) << 4) & 0x10)
                let h1 = Int((qh >> UInt32(j + 12)) & 0x10)
                out[j] = Float(Int(qs[j] & 0x0F) | h0) * d + m
                out[j + 16] = Float(Int(qs[j] >> 4) | h1) * d + m
            }
        }
    }

    /// The 6-bit scale and min of sub-block `j` from the 12 packed bytes of a K-quant block.
    @inline(__always) private static func scaleMinK4(_ j: Int, _ q: UnsafePointer<UInt8>) -> (Float, Float) {
        if j < 4 {
            return (Float(q[j] & 63), Float(q[j + 4] & 63))
        }
        let scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4)
        let minimum = (q[j + 4] >> 4) | ((q[j] >> 6) << 4)
        return (Float(scale), Float(minimum))
    }

    // block_q4_K { f16 d; f16 dmin; uint8 scales[12]; uint8 qs[128] }: 8 sub-blocks of 32.
    private static func q4_K(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for b in 0 ..< blocks {
            let block = src + b * 144
            let d = half(block, 0), dmin = half(block, 2)
            let scales = (block + 4).assumingMemoryBound(to: UInt8.self)
            var q = (block + 16).assumingMemoryBound(to: UInt8.self)
            var out = y + b * 256
            var subBlock = 0
            for _ in stride(from: 0, to: 256, by: 64) {
                let (sc1, m1) = scaleMinK4(subBlock, scales)
                let (sc2, m2) = scaleMinK4(subBlock + 1, scales)
                let d1 = d * sc1, min1 = dmin * m1
                let d2 = d * sc2, min2 = dmin * m2
                for l in 0 ..< 32 { out[l] = d1 * Float(q[l] & 0x0F) - min1 }
                for l in 0 ..< 32 { out[l + 32] = d2 * Float(q[l] >> 4) - min2 }
                q += 32; out += 64; subBlock += 2
            }
        }
    }

    // block_q5_K { f16 d; f16 dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128] }
    private static func q5_K(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for b in 0 ..< blocks {
            let block = src + b * 176
            let d = half(block, 0), dmin = half(block, 2)
            let scales = (block + 4).assumingMemoryBound(to: UInt8.self)
            let qh = (block + 16).assumingMemoryBound(to: UInt8.self)
            var ql = (block + 48).assumingMemoryBound(to: UInt8.self)
            var out = y + b * 256
            var subBlock = 0
            var u1: UInt8 = 1, u2: UInt8 = 2
            for _ in stride(from: 0, to: 256, by: 64) {
                let (sc1, m1) = scaleMinK4(subBlock, scales)
                let (sc2, m2) = scaleMinK4(subBlock + 1, scales)
                let d1 = d * sc1, min1 = dmin * m1
                let d2 = d * sc2, min2 = dmin * m2
                for l in 0 ..< 32 { out[l] = d1 * Float(Int(ql[l] & 0x0F) + (qh[l] & u1 != 0 ? 16 : 0)) - min1 }
                for l in 0 ..< 32 { out[l + 32] = d2 * Float(Int(ql[l] >> 4) + (qh[l] & u2 != 0 ? 16 : 0)) - min2 }
                ql += 32; out += 64; subBlock += 2
                u1 <<= 2; u2 <<= 2
            }
        }
    }

    // block_q6_K { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; f16 d }
    private static func q6_K(_ src: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ blocks: Int) {
        for b in 0 ..< blocks {
            let block = src + b * 210
            let d = half(block, 208)
            var ql = block.assumingMemoryBound(to: UInt8.self)
            var qh = (block + 128).assumingMemoryBound(to: UInt8.self)
            var sc = (block + 192).assumingMemoryBound(to: Int8.self)
            var out = y + b * 256
            for _ in stride(from: 0, to: 256, by: 128) {
                for l in 0 ..< 32 {
                    let s = l / 16
                    let q1 = Int((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32
                    let q2 = Int((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32
                    let q3 = Int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32
                    let q4 = Int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32
                    out[l] = d * Float(sc[s]) * Float(q1)
                    out[l + 32] = d * Float(sc[s + 2]) * Float(q2)
                    out[l + 64] = d * Float(sc[s + 4]) * Float(q3)
                    out[l + 96] = d * Float(sc[s + 6]) * Float(q4)
                }
                out += 128; ql += 64; qh += 32; sc += 8
            }
        }
    }
}
