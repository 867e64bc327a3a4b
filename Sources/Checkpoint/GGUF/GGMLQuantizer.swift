/// Encodes fp32 rows as GGML tensor data: F32, F16, Q8_0 and Q4_0, bit for bit as the
/// reference quantizer (the `gguf` Python package, itself bit-exact with ggml-quants.c):
///
/// - Q8_0: blocks of 32; d = max|x| / 127 as fp16, then 32 int8 round-half-away(x / d).
/// - Q4_0: blocks of 32; d = x_max / −8 (x_max the value of largest magnitude, the first if
///   tied) as fp16, then 32 nibbles min(15, trunc(x / d + 8.5)), the first 16 values in the low
///   nibbles and the last 16 in the high ones.
///
/// Every step is fp32 arithmetic in the reference's order (1/d is taken once, then multiplied),
/// which is what makes the bytes identical rather than merely close.
public enum GGMLQuantizer {
    public enum QuantizerError: Error, Equatable, CustomStringConvertible {
        case unsupported(GGMLType)
        case rowLength(type: GGMLType, columns: Int)

        public var description: String {
            switch self {
            case .unsupported(let type): "writing \(type) is not supported (F32, F16, Q8_0 and Q4_0 are)"
            case .rowLength(let type, let columns): "\(type) needs rows whose length is a multiple of \(type.blockSize); these have \(columns)"
            }
        }
    }

    /// The types `encode` writes.
    public static let writable: [GGMLType] = [.f32, .f16, .q8_0, .q4_0]

    /// The bytes of `values` (rows of `columns`, row-major) in `type`.
    public static func encode(_ values: UnsafeBufferPointer<Float>, columns: Int, as type: GGMLType) throws(QuantizerError) -> [UInt8] {
        guard writable.contains(type) else { throw .unsupported(type) }
        guard columns > 0, values.count % columns == 0 else { throw .rowLength(type: type, columns: columns) }
        guard columns % type.blockSize == 0 else { throw .rowLength(type: type, columns: columns) }
        let blocks = values.count / type.blockSize
        var out = [UInt8](repeating: 0, count: blocks * type.bytesPerBlock)
        out.withUnsafeMutableBufferPointer { bytes in
            let base = values.baseAddress!
            switch type {
            case .f32:
                for i in 0 ..< values.count { store(base[i].bitPattern, at: i * 4, in: bytes) }
            case .f16:
                for i in 0 ..< values.count { store(Float16(base[i]).bitPattern, at: i * 2, in: bytes) }
            case .q8_0:
                for b in 0 ..< blocks { q8_0(base + b * 32, into: bytes, at: b * 34) }
            case .q4_0:
                for b in 0 ..< blocks { q4_0(base + b * 32, into: bytes, at: b * 18) }
            default:
                break
            }
        }
        return out
    }

    static func q8_0(_ x: UnsafePointer<Float>, into bytes: UnsafeMutableBufferPointer<UInt8>, at offset: Int) {
        var amax: Float = 0
        for i in 0 ..< 32 { amax = max(amax, abs(x[i])) }
        let d = amax / 127
        let inverse: Float = d == 0 ? 0 : 1 / d
        store(Float16(d).bitPattern, at: offset, in: bytes)
        for i in 0 ..< 32 {
            let q = (x[i] * inverse).rounded(.toNearestOrAwayFromZero)
            bytes[offset + 2 + i] = UInt8(bitPattern: Int8(q))
        }
    }

    static func q4_0(_ x: UnsafePointer<Float>, into bytes: UnsafeMutableBufferPointer<UInt8>, at offset: Int) {
        var largest = 0
        for i in 1 ..< 32 where abs(x[i]) > abs(x[largest]) { largest = i }
        let d = x[largest] / -8
        let inverse: Float = d == 0 ? 0 : 1 / d
        store(Float16(d).bitPattern, at: offset, in: bytes)
        func nibble(_ value: Float) -> UInt8 { UInt8(min(15, (value * inverse + 8.5).rounded(.towardZero))) }
        for i in 0 ..< 16 {
            bytes[offset + 2 + i] = nibble(x[i]) | (nibble(x[16 + i]) << 4)
        }
    }

    private static func store<T: FixedWidthInteger>(_ value: T, at offset: Int, in bytes: UnsafeMutableBufferPointer<UInt8>) {
        withUnsafeBytes(of: value.littleEndian) { raw in
            for (i, byte) in raw.enumerated() { bytes[offset + i] = byte }
        }
    }
}
