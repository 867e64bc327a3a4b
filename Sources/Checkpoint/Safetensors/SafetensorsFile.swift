import Foundation

/// One tensor's entry in a safetensors header.
public struct SafetensorsEntry: Sendable, Equatable {
    public let name: String
    public let dtype: TensorDType
    public let shape: [Int]
    /// Byte range within the data section (after the header).
    public let dataRange: Range<Int>

    public var elementCount: Int { shape.reduce(1, *) }
}

/// A validated, memory-mapped safetensors file.
///
/// Validation follows the format's own rules before any tensor is read: header length within
/// bounds, a JSON object of known dtypes and non-negative shapes, byte sizes that match the
/// shapes, and tensors that tile the data section exactly — contiguous, in range, no gaps,
/// no overlaps.
public final class SafetensorsFile: @unchecked Sendable {
    /// The reference implementation's limit; a larger header is treated as hostile.
    public static let maximumHeaderSize = 100_000_000

    public let path: String
    /// Entries in data order.
    public let entries: [SafetensorsEntry]
    public let metadata: [String: String]
    private let file: MappedFile
    private let dataStart: Int
    private let index: [String: Int]

    public convenience init(path: String) throws {
        try self.init(mapped: MappedFile(path: path))
    }

    public init(mapped file: MappedFile) throws(SafetensorsError) {
        self.file = file
        path = file.path
        guard file.count >= 8 else { throw .truncated(path: path, size: file.count) }
        let headerSize = UInt64(littleEndian: file.bytes.loadUnaligned(as: UInt64.self))
        guard headerSize <= UInt64(Self.maximumHeaderSize) else {
            throw .headerTooLarge(path: path, size: headerSize, limit: Self.maximumHeaderSize)
        }
        guard 8 + Int(headerSize) <= file.count else {
            throw .headerOutOfRange(path: path, headerSize: Int(headerSize), fileSize: file.count)
        }
        dataStart = 8 + Int(headerSize)
        let headerBytes = UnsafeRawBufferPointer(rebasing: file.bytes[8 ..< dataStart])
        guard headerBytes.first == UInt8(ascii: "{") else { throw .invalidHeader(path: path, reason: "header does not start with '{'") }
        guard let json = try? JSONSerialization.jsonObject(with: Data(headerBytes)), let object = json as? [String: Any] else {
            throw .invalidHeader(path: path, reason: "header is not a JSON object")
        }

        var metadata: [String: String] = [:]
        var entries: [SafetensorsEntry] = []
        for (name, value) in object {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else { throw .invalidHeader(path: path, reason: "__metadata__ is not an object") }
                for (key, item) in map {
                    guard let text = item as? String else {
                        throw .invalidHeader(path: path, reason: "__metadata__ value of '\(key)' is not a string")
                    }
                    metadata[key] = text
                }
                continue
            }
            entries.append(try Self.parseEntry(name: name, value: value, path: path))
        }
        entries.sort { ($0.dataRange.lowerBound, $0.dataRange.upperBound) < ($1.dataRange.lowerBound, $1.dataRange.upperBound) }

        let dataSize = file.count - dataStart
        var expectedStart = 0
        for (i, entry) in entries.enumerated() {
            if entry.dataRange.lowerBound != expectedStart {
                if entry.dataRange.lowerBound < expectedStart, i > 0 {
                    throw .overlappingTensors(path: path, first: entries[i - 1].name, second: entry.name)
                }
                throw .gapBeforeTensor(path: path, tensor: entry.name, expectedStart: expectedStart, found: entry.dataRange.lowerBound)
            }
            guard entry.dataRange.upperBound <= dataSize else {
                throw .tensorOutOfRange(path: path, tensor: entry.name, end: entry.dataRange.upperBound, dataSize: dataSize)
            }
            expectedStart = entry.dataRange.upperBound
        }
        guard expectedStart == dataSize else { throw .trailingBytes(path: path, used: expectedStart, dataSize: dataSize) }

        self.entries = entries
        self.metadata = metadata
        index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
    }

    private static func parseEntry(name: String, value: Any, path: String) throws(SafetensorsError) -> SafetensorsEntry {
        guard let fields = value as? [String: Any] else { throw .invalidEntry(path: path, tensor: name, reason: "entry is not an object") }
        guard let dtypeName = fields["dtype"] as? String else { throw .invalidEntry(path: path, tensor: name, reason: "missing dtype") }
        guard let dtype = TensorDType(rawValue: dtypeName) else { throw .unknownDType(path: path, tensor: name, dtype: dtypeName) }
        guard let rawShape = fields["shape"] as? [Any], let shape = integers(rawShape) else {
            throw .invalidEntry(path: path, tensor: name, reason: "shape must be a list of non-negative integers")
        }
        guard let rawOffsets = fields["data_offsets"] as? [Any], let offsets = integers(rawOffsets), offsets.count == 2,
              offsets[0] <= offsets[1] else {
            throw .invalidEntry(path: path, tensor: name, reason: "data_offsets must be [begin, end] with begin <= end")
        }
        var elements = 1
        for d in shape {
            let (product, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow else { throw .invalidEntry(path: path, tensor: name, reason: "shape \(shape) overflows") }
            elements = product
        }
        let (bytes, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, bytes == offsets[1] - offsets[0] else {
            throw .sizeMismatch(path: path, tensor: name, shape: shape, dtype: dtype, expectedBytes: overflow ? Int.max : bytes,
                                foundBytes: offsets[1] - offsets[0])
        }
        return SafetensorsEntry(name: name, dtype: dtype, shape: shape, dataRange: offsets[0] ..< offsets[1])
    }

    private static func integers(_ values: [Any]) -> [Int]? {
        var result: [Int] = []
        for value in values {
            // JSONSerialization gives NSNumber; reject booleans, fractions and negatives.
            guard let number = value as? NSNumber, !["c", "B"].contains(String(cString: number.objCType)) else { return nil }
            let double = number.doubleValue
            guard double >= 0, double == double.rounded(), double < 9.0e15 else { return nil }
            result.append(number.intValue)
        }
        return result
    }

    public subscript(name: String) -> SafetensorsEntry? { index[name].map { entries[$0] } }

    /// The tensor's bytes, in place in the mapping.
    public func bytes(of entry: SafetensorsEntry) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[dataStart + entry.dataRange.lowerBound ..< dataStart + entry.dataRange.upperBound])
    }

    /// A floating-point tensor widened to fp32.
    public func floats(_ name: String) throws(SafetensorsError) -> [Float] {
        guard let entry = self[name] else { throw .missingTensor(path: path, name: name) }
        let raw = bytes(of: entry)
        let count = entry.elementCount
        switch entry.dtype {
        case .f32:
            return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: raw)
                initialized = count
            }
        case .f16:
            return (0 ..< count).map { Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }
        case .bf16:
            return (0 ..< count).map { Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) << 16) }
        default:
            throw .notFloatingPoint(path: path, tensor: name, dtype: entry.dtype)
        }
    }

    public var mappedFile: MappedFile { file }
}

public enum SafetensorsError: Error, Equatable, CustomStringConvertible {
    case truncated(path: String, size: Int)
    case headerTooLarge(path: String, size: UInt64, limit: Int)
    case headerOutOfRange(path: String, headerSize: Int, fileSize: Int)
    case invalidHeader(path: String, reason: String)
    case invalidEntry(path: String, tensor: String, reason: String)
    case unknownDType(path: String, tensor: String, dtype: String)
    case sizeMismatch(path: String, tensor: String, shape: [Int], dtype: TensorDType, expectedBytes: Int, foundBytes: Int)
    case gapBeforeTensor(path: String, tensor: String, expectedStart: Int, found: Int)
    case overlappingTensors(path: String, first: String, second: String)
    case tensorOutOfRange(path: String, tensor: String, end: Int, dataSize: Int)
    case trailingBytes(path: String, used: Int, dataSize: Int)
    case missingTensor(path: String, name: String)
    case notFloatingPoint(path: String, tensor: String, dtype: TensorDType)
    case duplicateTensor(name: String)
    case producedWrongSize(tensor: String, expected: Int, found: Int)
    case invalidQuantization(path: String, reason: String)

    public var description: String {
        switch self {
        case .truncated(let path, let size): "\(path): \(size) bytes is too short for a safetensors file (needs an 8-byte header length)"
        case .headerTooLarge(let path, let size, let limit): "\(path): header length \(size) exceeds the limit of \(limit) bytes"
        case .headerOutOfRange(let path, let headerSize, let fileSize):
            "\(path): header of \(headerSize) bytes does not fit in a file of \(fileSize) bytes"
        case .invalidHeader(let path, let reason): "\(path): invalid header: \(reason)"
        case .invalidEntry(let path, let tensor, let reason): "\(path): tensor '\(tensor)': \(reason)"
        case .unknownDType(let path, let tensor, let dtype): "\(path): tensor '\(tensor)' has unknown dtype '\(dtype)'"
        case .sizeMismatch(let path, let tensor, let shape, let dtype, let expected, let found):
            "\(path): tensor '\(tensor)' of shape \(shape) and dtype \(dtype.rawValue) needs \(expected) bytes, its offsets span \(found)"
        case .gapBeforeTensor(let path, let tensor, let expected, let found):
            "\(path): tensor '\(tensor)' starts at byte \(found) of the data, expected \(expected) (tensors must be contiguous)"
        case .overlappingTensors(let path, let first, let second): "\(path): tensors '\(first)' and '\(second)' overlap"
        case .tensorOutOfRange(let path, let tensor, let end, let dataSize):
            "\(path): tensor '\(tensor)' ends at byte \(end) but the data section holds \(dataSize) bytes"
        case .trailingBytes(let path, let used, let dataSize):
            "\(path): tensors cover \(used) bytes but the data section holds \(dataSize)"
        case .missingTensor(let path, let name): "\(path): tensor '\(name)' is missing"
        case .notFloatingPoint(let path, let tensor, let dtype): "\(path): tensor '\(tensor)' is \(dtype.rawValue), not a float type (a quantized model's blocks are read by the runtime only; training and compression need the fp32 variant)"
        case .duplicateTensor(let name): "tensor '\(name)' is written twice"
        case .producedWrongSize(let tensor, let expected, let found):
            "tensor '\(tensor)': producer wrote \(found) bytes, its shape needs \(expected)"
        case .invalidQuantization(let path, let reason): "\(path): not a quantized checkpoint hubctl reads: \(reason)"
        }
    }
}
