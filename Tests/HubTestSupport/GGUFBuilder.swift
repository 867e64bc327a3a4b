import Foundation

/// Writes small GGUF files byte by byte, so that tests can make valid files and then break
/// exactly one thing in them.
public struct GGUFBuilder {
    public enum Value {
        case u8(UInt8), i8(Int8), u16(UInt16), i16(Int16), u32(UInt32), i32(Int32), u64(UInt64), i64(Int64)
        case f32(Float), f64(Double), bool(Bool), string(String), array(UInt32, [Value])

        var tag: UInt32 {
            switch self {
            case .u8: 0
            case .i8: 1
            case .u16: 2
            case .i16: 3
            case .u32: 4
            case .i32: 5
            case .f32: 6
            case .bool: 7
            case .string: 8
            case .array: 9
            case .u64: 10
            case .i64: 11
            case .f64: 12
            }
        }
    }

    public struct Tensor {
        public var name: String
        /// GGML order, innermost first.
        public var dims: [UInt64]
        public var type: UInt32
        public var data: [UInt8]
        /// Overrides the computed offset, to make broken files.
        public var offset: UInt64?

        public init(name: String, dims: [UInt64], type: UInt32, data: [UInt8], offset: UInt64? = nil) {
            self.name = name
            self.dims = dims
            self.type = type
            self.data = data
            self.offset = offset
        }
    }

    public var version: UInt32 = 3
    public var metadata: [(String, Value)] = []
    public var tensors: [Tensor] = []
    public var alignment = 32

    public init() {}

    public static func f32Tensor(_ name: String, _ values: [Float], dims: [UInt64]? = nil) -> Tensor {
        var bytes: [UInt8] = []
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        return Tensor(name: name, dims: dims ?? [UInt64(values.count)], type: 0, data: bytes)
    }

    public func build() -> [UInt8] {
        var out: [UInt8] = Array("GGUF".utf8)
        append(&out, version)
        append(&out, UInt64(tensors.count))
        append(&out, UInt64(metadata.count))
        for (key, value) in metadata {
            appendString(&out, key)
            append(&out, value.tag)
            appendValue(&out, value)
        }
        var offsets: [UInt64] = []
        var next: UInt64 = 0
        for tensor in tensors {
            offsets.append(tensor.offset ?? next)
            next = (tensor.offset ?? next) + UInt64(tensor.data.count)
            next = (next + UInt64(alignment) - 1) / UInt64(alignment) * UInt64(alignment)
        }
        for (tensor, offset) in zip(tensors, offsets) {
            appendString(&out, tensor.name)
            append(&out, UInt32(tensor.dims.count))
            for d in tensor.dims { append(&out, d) }
            append(&out, tensor.type)
            append(&out, offset)
        }
        while out.count % alignment != 0 { out.append(0) }
        let dataStart = out.count
        for (tensor, offset) in zip(tensors, offsets) {
            let start = dataStart + Int(offset)
            if out.count < start + tensor.data.count { out.append(contentsOf: [UInt8](repeating: 0, count: start + tensor.data.count - out.count)) }
            out.replaceSubrange(start ..< start + tensor.data.count, with: tensor.data)
        }
        return out
    }

    public func write(to url: URL) throws {
        try Data(build()).write(to: url)
    }

    private func append<T: FixedWidthInteger>(_ out: inout [UInt8], _ value: T) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    private func appendString(_ out: inout [UInt8], _ s: String) {
        append(&out, UInt64(s.utf8.count))
        out.append(contentsOf: s.utf8)
    }

    private func appendValue(_ out: inout [UInt8], _ value: Value) {
        switch value {
        case .u8(let v): append(&out, v)
        case .i8(let v): append(&out, v)
        case .u16(let v): append(&out, v)
        case .i16(let v): append(&out, v)
        case .u32(let v): append(&out, v)
        case .i32(let v): append(&out, v)
        case .u64(let v): append(&out, v)
        case .i64(let v): append(&out, v)
        case .f32(let v): append(&out, v.bitPattern)
        case .f64(let v): append(&out, v.bitPattern)
        case .bool(let v): out.append(v ? 1 : 0)
        case .string(let s): appendString(&out, s)
        case .array(let tag, let items):
            append(&out, tag)
            append(&out, UInt64(items.count))
            for item in items { appendValue(&out, item) }
        }
    }
}
