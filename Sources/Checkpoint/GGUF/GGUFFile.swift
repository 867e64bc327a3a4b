import Foundation

/// Where one tensor lives in a GGUF file, and what it holds.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// GGML order: `dimensions[0]` is the innermost (contiguous) axis.
    public let dimensions: [Int]
    public let type: GGMLType
    /// Offset from the start of the data section.
    public let offset: Int
    public let byteCount: Int

    public var elementCount: Int { dimensions.reduce(1, *) }
    /// Row-major (PyTorch / safetensors) order: outermost axis first.
    public var shape: [Int] { dimensions.reversed() }
}

/// A validated, memory-mapped GGUF file (versions 2 and 3, little-endian).
///
/// The whole header — metadata, tensor table, alignment, every tensor's extent — is checked
/// before any tensor data is touched, so a tensor returned from here is always in range.
public final class GGUFFile: @unchecked Sendable {
    public static let magic: [UInt8] = Array("GGUF".utf8)
    static let maximumDimensions = 4

    public let path: String
    public let version: UInt32
    /// Metadata in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Byte offset of the data section within the file.
    public let dataOffset: Int
    private let file: MappedFile
    private let keyIndex: [String: Int]
    private let tensorIndex: [String: Int]

    public convenience init(path: String) throws {
        try self.init(mapped: MappedFile(path: path))
    }

    public init(mapped file: MappedFile) throws(GGUFError) {
        self.file = file
        let path = file.path
        self.path = path
        var reader = ByteReader(file.bytes)

        func truncated(_ error: ByteReader.OutOfBounds, _ what: String) -> GGUFError {
            .truncated(path: path, offset: error.offset, wanted: error.wanted, available: error.available, reading: what)
        }

        let magicBytes = Array(file.bytes.prefix(4))
        guard magicBytes == Self.magic else { throw .badMagic(path: path, found: magicBytes) }
        do { try reader.skip(4) } catch { throw truncated(error, "magic") }
        let rawVersion: UInt32
        let tensorCount: UInt64
        let keyCount: UInt64
        do {
            rawVersion = try reader.read(UInt32.self)
            if rawVersion.byteSwapped == 2 || rawVersion.byteSwapped == 3 { throw GGUFError.bigEndian(path: path) }
            guard rawVersion == 2 || rawVersion == 3 else { throw GGUFError.unsupportedVersion(path: path, version: rawVersion) }
            tensorCount = try reader.read(UInt64.self)
            keyCount = try reader.read(UInt64.self)
        } catch let error as GGUFError {
            throw error
        } catch let error as ByteReader.OutOfBounds {
            throw truncated(error, "header")
        } catch {
            fatalError("unreachable: \(error)")
        }
        version = rawVersion

        // Counts come from the file: bound them by the bytes left before allocating anything.
        let minimumKeySize = 8 + 4 + 1
        guard keyCount <= UInt64(reader.remaining / minimumKeySize) else {
            throw .truncated(path: path, offset: reader.offset, wanted: Int(clamping: keyCount) &* minimumKeySize,
                             available: reader.remaining, reading: "\(keyCount) metadata entries")
        }
        var metadata: [(key: String, value: GGUFValue)] = []
        var keyIndex: [String: Int] = [:]
        for _ in 0 ..< keyCount {
            let key = try Self.readString(&reader, path: path, what: "metadata key")
            let typeTag: UInt32
            do { typeTag = try reader.read(UInt32.self) } catch { throw truncated(error, "type of '\(key)'") }
            guard let type = GGUFValueType(rawValue: typeTag) else {
                throw .unknownValueType(path: path, key: key, type: typeTag)
            }
            let value = try Self.readValue(&reader, type: type, path: path, key: key)
            guard keyIndex[key] == nil else { throw .duplicateKey(path: path, key: key) }
            keyIndex[key] = metadata.count
            metadata.append((key, value))
        }
        self.metadata = metadata
        self.keyIndex = keyIndex

        var alignment = 32
        if let index = keyIndex["general.alignment"] {
            let value = metadata[index].value
            guard case .uint32(let a) = value, a > 0, a & (a - 1) == 0 else {
                throw .badAlignment(path: path, value: "\(value)")
            }
            alignment = Int(a)
        }
        self.alignment = alignment

        let minimumTensorInfoSize = 8 + 4 + 8 + 4 + 8
        guard tensorCount <= UInt64(reader.remaining / minimumTensorInfoSize) else {
            throw .truncated(path: path, offset: reader.offset, wanted: Int(clamping: tensorCount) &* minimumTensorInfoSize,
                             available: reader.remaining, reading: "\(tensorCount) tensor infos")
        }
        var rawInfos: [(name: String, dims: [UInt64], type: UInt32, offset: UInt64)] = []
        for _ in 0 ..< tensorCount {
            let name = try Self.readString(&reader, path: path, what: "tensor name")
            do {
                let dimensionCount = try reader.read(UInt32.self)
                guard dimensionCount >= 1, dimensionCount <= Self.maximumDimensions else {
                    throw GGUFError.badDimensions(path: path, tensor: name, dims: [],
                                                  reason: "\(dimensionCount) dimensions (expected 1 to \(Self.maximumDimensions))")
                }
                var dims: [UInt64] = []
                for _ in 0 ..< dimensionCount { dims.append(try reader.read(UInt64.self)) }
                let type = try reader.read(UInt32.self)
                let offset = try reader.read(UInt64.self)
                rawInfos.append((name, dims, type, offset))
            } catch let error as GGUFError {
                throw error
            } catch let error as ByteReader.OutOfBounds {
                throw truncated(error, "info of tensor '\(name)'")
            } catch {
                fatalError("unreachable: \(error)")
            }
        }

        let headerEnd = reader.offset
        let dataOffset = (headerEnd + alignment - 1) / alignment * alignment
        self.dataOffset = dataOffset
        let dataSize = max(0, file.count - dataOffset)

        var tensors: [GGUFTensorInfo] = []
        var tensorIndex: [String: Int] = [:]
        for raw in rawInfos {
            guard tensorIndex[raw.name] == nil else { throw .duplicateTensor(path: path, name: raw.name) }
            guard let type = GGMLType(rawValue: raw.type) else {
                throw .unknownTensorType(path: path, tensor: raw.name, type: raw.type)
            }
            var elements = 1
            for d in raw.dims {
                guard d >= 1, d <= UInt64(Int32.max) else {
                    throw .badDimensions(path: path, tensor: raw.name, dims: raw.dims, reason: "dimension \(d) out of range")
                }
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(d))
                // Capped so that byte counts below cannot overflow; whether the bytes are really
                // there is checked against the data section next.
                guard !overflow, product <= 1 << 53 else {
                    throw .badDimensions(path: path, tensor: raw.name, dims: raw.dims, reason: "element count overflows")
                }
                elements = product
            }
            guard Int(raw.dims[0]) % type.blockSize == 0 else {
                throw .badDimensions(path: path, tensor: raw.name, dims: raw.dims,
                                     reason: "row length \(raw.dims[0]) is not a multiple of the \(type) block size \(type.blockSize)")
            }
            let byteCount = elements / type.blockSize * type.bytesPerBlock
            guard raw.offset % UInt64(alignment) == 0 else {
                throw .misalignedTensor(path: path, tensor: raw.name, offset: raw.offset, alignment: alignment)
            }
            let (end, overflow) = raw.offset.addingReportingOverflow(UInt64(byteCount))
            guard !overflow, end <= UInt64(dataSize) else {
                throw .tensorOutOfRange(path: path, tensor: raw.name, start: raw.offset,
                                        end: overflow ? .max : end, dataSize: dataSize)
            }
            tensorIndex[raw.name] = tensors.count
            tensors.append(GGUFTensorInfo(name: raw.name, dimensions: raw.dims.map { Int($0) }, type: type,
                                          offset: Int(raw.offset), byteCount: byteCount))
        }
        let byStart = tensors.sorted { $0.offset < $1.offset }
        for (a, b) in zip(byStart, byStart.dropFirst()) where a.offset + a.byteCount > b.offset {
            throw .overlappingTensors(path: path, first: a.name, second: b.name)
        }
        self.tensors = tensors
        self.tensorIndex = tensorIndex
    }

    // MARK: Metadata access

    public subscript(key: String) -> GGUFValue? {
        keyIndex[key].map { metadata[$0].value }
    }

    public func requireInteger(_ key: String) throws(GGUFError) -> Int {
        guard let value = self[key] else { throw .missingKey(path: path, key: key) }
        guard let integer = value.integer else { throw .wrongKeyType(path: path, key: key, expected: "an integer", found: value.valueType) }
        return integer
    }

    public func requireNumber(_ key: String) throws(GGUFError) -> Double {
        guard let value = self[key] else { throw .missingKey(path: path, key: key) }
        guard let number = value.number else { throw .wrongKeyType(path: path, key: key, expected: "a number", found: value.valueType) }
        return number
    }

    public func requireString(_ key: String) throws(GGUFError) -> String {
        guard let value = self[key] else { throw .missingKey(path: path, key: key) }
        guard let string = value.string else { throw .wrongKeyType(path: path, key: key, expected: "a string", found: value.valueType) }
        return string
    }

    public func requireStringArray(_ key: String) throws(GGUFError) -> [String] {
        guard let value = self[key] else { throw .missingKey(path: path, key: key) }
        guard case .array(.string, let items) = value else {
            throw .wrongKeyType(path: path, key: key, expected: "an array of strings", found: value.valueType)
        }
        return items.map { $0.string! }
    }

    // MARK: Tensor access

    public func tensorInfo(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The raw encoded bytes of a tensor, in place in the mapping.
    public func rawBytes(of info: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        let start = dataOffset + info.offset
        return UnsafeRawBufferPointer(rebasing: file.bytes[start ..< start + info.byteCount])
    }

    /// A tensor dequantized to fp32, in row-major order.
    public func dequantized(_ name: String) throws -> [Float] {
        guard let info = tensorInfo(named: name) else { throw GGUFError.missingTensor(path: path, name: name) }
        return try dequantized(info)
    }

    public func dequantized(_ info: GGUFTensorInfo) throws(GGUFError) -> [Float] {
        var output = [Float](repeating: 0, count: info.elementCount)
        try output.withUnsafeMutableBufferPointer { (buffer) throws(GGUFError) in
            try Dequantizer.dequantize(rawBytes(of: info), type: info.type, tensor: info.name, into: buffer)
        }
        return output
    }

    /// Keeps the mapping alive while raw views are in use elsewhere.
    public var mappedFile: MappedFile { file }

    // MARK: Parsing helpers

    private static func readString(_ reader: inout ByteReader, path: String, what: String) throws(GGUFError) -> String {
        let start = reader.offset
        do {
            let length = try reader.read(UInt64.self)
            guard length <= UInt64(reader.remaining) else {
                throw ByteReader.OutOfBounds(offset: reader.offset, wanted: Int(clamping: length), available: reader.remaining)
            }
            let bytes = try reader.slice(Int(length))
            guard let string = String(validating: bytes, as: UTF8.self) else {
                throw GGUFError.invalidString(path: path, offset: start)
            }
            return string
        } catch let error as GGUFError {
            throw error
        } catch let error as ByteReader.OutOfBounds {
            throw .truncated(path: path, offset: error.offset, wanted: error.wanted, available: error.available, reading: what)
        } catch {
            fatalError("unreachable: \(error)")
        }
    }

    private static func readValue(_ reader: inout ByteReader, type: GGUFValueType, path: String, key: String) throws(GGUFError) -> GGUFValue {
        do {
            switch type {
            case .uint8: return .uint8(try reader.read(UInt8.self))
            case .int8: return .int8(try reader.read(Int8.self))
            case .uint16: return .uint16(try reader.read(UInt16.self))
            case .int16: return .int16(try reader.read(Int16.self))
            case .uint32: return .uint32(try reader.read(UInt32.self))
            case .int32: return .int32(try reader.read(Int32.self))
            case .uint64: return .uint64(try reader.read(UInt64.self))
            case .int64: return .int64(try reader.read(Int64.self))
            case .float32: return .float32(try reader.readFloat())
            case .float64: return .float64(try reader.readDouble())
            case .bool:
                let byte = try reader.read(UInt8.self)
                return .bool(byte != 0)
            case .string: return .string(try readString(&reader, path: path, what: "value of '\(key)'"))
            case .array:
                let tag = try reader.read(UInt32.self)
                guard let elementType = GGUFValueType(rawValue: tag) else {
                    throw GGUFError.unknownValueType(path: path, key: key, type: tag)
                }
                let count = try reader.read(UInt64.self)
                guard count <= UInt64(reader.remaining / elementType.minimumEncodedSize) else {
                    throw ByteReader.OutOfBounds(offset: reader.offset,
                                                 wanted: Int(clamping: count) &* elementType.minimumEncodedSize,
                                                 available: reader.remaining)
                }
                var items: [GGUFValue] = []
                items.reserveCapacity(Int(count))
                for _ in 0 ..< count { items.append(try readValue(&reader, type: elementType, path: path, key: key)) }
                return .array(elementType, items)
            }
        } catch let error as GGUFError {
            throw error
        } catch let error as ByteReader.OutOfBounds {
            throw .truncated(path: path, offset: error.offset, wanted: error.wanted, available: error.available, reading: "value of '\(key)'")
        } catch {
            fatalError("unreachable: \(error)")
        }
    }
}
