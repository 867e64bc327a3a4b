import Foundation
import HubCore

/// Writes a GGUF file (version 3, little-endian): the header, the metadata, the tensor table,
/// then each tensor's data at an offset aligned to `general.alignment` (32). Tensors are
/// produced one at a time, so a model is never held twice in memory; the file appears whole
/// or not at all.
public enum GGUFWriter {
    public struct Tensor {
        public let name: String
        /// GGML order: the innermost (contiguous) axis first.
        public let dimensions: [Int]
        public let type: GGMLType
        /// The tensor's bytes, asked for when the data section reaches it.
        public let bytes: () throws -> [UInt8]

        public init(name: String, dimensions: [Int], type: GGMLType, bytes: @escaping () throws -> [UInt8]) {
            self.name = name
            self.dimensions = dimensions
            self.type = type
            self.bytes = bytes
        }

        var byteCount: Int { dimensions.reduce(1, *) / type.blockSize * type.bytesPerBlock }
    }

    public static let alignment = 32

    public static func write(metadata: [(key: String, value: GGUFValue)], tensors: [Tensor], to destination: URL) throws {
        var header = Encoder()
        header.bytes += GGUFFile.magic
        header.append(UInt32(3))
        header.append(UInt64(tensors.count))
        header.append(UInt64(metadata.count))
        for (key, value) in metadata {
            header.append(string: key)
            header.append(value.valueType.rawValue)
            header.append(value: value)
        }
        var offset = 0
        var offsets: [Int] = []
        for tensor in tensors {
            offsets.append(offset)
            header.append(string: tensor.name)
            header.append(UInt32(tensor.dimensions.count))
            for dimension in tensor.dimensions { header.append(UInt64(dimension)) }
            header.append(tensor.type.rawValue)
            header.append(UInt64(offset))
            offset = padded(offset + tensor.byteCount)
        }
        header.bytes += [UInt8](repeating: 0, count: padded(header.bytes.count) - header.bytes.count)

        try AtomicFile.write(to: destination) { handle in
            handle.write(Data(header.bytes))
            var written = 0
            for (tensor, start) in zip(tensors, offsets) {
                precondition(written == start)
                let bytes = try tensor.bytes()
                guard bytes.count == tensor.byteCount else {
                    throw GGUFError.truncated(path: destination.path, offset: start, wanted: tensor.byteCount, available: bytes.count,
                                              reading: "tensor \(tensor.name) as produced for writing")
                }
                handle.write(Data(bytes))
                let end = padded(start + bytes.count)
                if end > start + bytes.count { handle.write(Data(count: end - start - bytes.count)) }
                written = end
            }
        }
    }

    static func padded(_ offset: Int) -> Int { (offset + alignment - 1) / alignment * alignment }

    struct Encoder {
        var bytes: [UInt8] = []

        mutating func append<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        }

        mutating func append(string: String) {
            append(UInt64(string.utf8.count))
            bytes.append(contentsOf: string.utf8)
        }

        mutating func append(value: GGUFValue) {
            switch value {
            case .uint8(let v): append(v)
            case .int8(let v): append(v)
            case .uint16(let v): append(v)
            case .int16(let v): append(v)
            case .uint32(let v): append(v)
            case .int32(let v): append(v)
            case .uint64(let v): append(v)
            case .int64(let v): append(v)
            case .float32(let v): append(v.bitPattern)
            case .float64(let v): append(v.bitPattern)
            case .bool(let v): bytes.append(v ? 1 : 0)
            case .string(let s): append(string: s)
            case .array(let type, let items):
                append(type.rawValue)
                append(UInt64(items.count))
                for item in items { append(value: item) }
            }
        }
    }
}
