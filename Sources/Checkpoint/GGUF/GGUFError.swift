/// Why a GGUF file was rejected. Every case names the file and where in it the problem is.
public enum GGUFError: Error, Equatable, CustomStringConvertible {
    case badMagic(path: String, found: [UInt8])
    case unsupportedVersion(path: String, version: UInt32)
    case bigEndian(path: String)
    case truncated(path: String, offset: Int, wanted: Int, available: Int, reading: String)
    case unknownValueType(path: String, key: String, type: UInt32)
    case duplicateKey(path: String, key: String)
    case invalidString(path: String, offset: Int)
    case badAlignment(path: String, value: String)
    case duplicateTensor(path: String, name: String)
    case badDimensions(path: String, tensor: String, dims: [UInt64], reason: String)
    case unknownTensorType(path: String, tensor: String, type: UInt32)
    case misalignedTensor(path: String, tensor: String, offset: UInt64, alignment: Int)
    case tensorOutOfRange(path: String, tensor: String, start: UInt64, end: UInt64, dataSize: Int)
    case overlappingTensors(path: String, first: String, second: String)
    case missingKey(path: String, key: String)
    case wrongKeyType(path: String, key: String, expected: String, found: GGUFValueType)
    case cannotDequantize(tensor: String, type: GGMLType)
    case missingTensor(path: String, name: String)

    public var description: String {
        switch self {
        case .badMagic(let path, let found):
            "\(path): not a GGUF file (expected magic 'GGUF', found \(found.map { String(format: "%02x", $0) }.joined(separator: " ")))"
        case .unsupportedVersion(let path, let version):
            "\(path): GGUF version \(version) is not supported (expected 2 or 3)"
        case .bigEndian(let path): "\(path): big-endian GGUF files are not supported"
        case .truncated(let path, let offset, let wanted, let available, let reading):
            "\(path): truncated while reading \(reading) at byte \(offset): needs \(wanted) bytes, \(available) left"
        case .unknownValueType(let path, let key, let type):
            "\(path): metadata key '\(key)' has unknown value type \(type)"
        case .duplicateKey(let path, let key): "\(path): metadata key '\(key)' appears twice"
        case .invalidString(let path, let offset): "\(path): string at byte \(offset) is not valid UTF-8"
        case .badAlignment(let path, let value):
            "\(path): general.alignment must be a power of two (uint32), found \(value)"
        case .duplicateTensor(let path, let name): "\(path): tensor '\(name)' appears twice"
        case .badDimensions(let path, let tensor, let dims, let reason):
            "\(path): tensor '\(tensor)' has bad dimensions \(dims): \(reason)"
        case .unknownTensorType(let path, let tensor, let type):
            "\(path): tensor '\(tensor)' has unknown type \(type)"
        case .misalignedTensor(let path, let tensor, let offset, let alignment):
            "\(path): tensor '\(tensor)' data offset \(offset) is not a multiple of the alignment \(alignment)"
        case .tensorOutOfRange(let path, let tensor, let start, let end, let dataSize):
            "\(path): tensor '\(tensor)' spans bytes \(start)..<\(end) of the data section, which holds only \(dataSize) bytes"
        case .overlappingTensors(let path, let first, let second):
            "\(path): tensors '\(first)' and '\(second)' overlap"
        case .missingKey(let path, let key): "\(path): required metadata key '\(key)' is missing"
        case .wrongKeyType(let path, let key, let expected, let found):
            "\(path): metadata key '\(key)' should be \(expected), found \(found)"
        case .cannotDequantize(let tensor, let type):
            "tensor '\(tensor)': dequantizing \(type) is not supported"
        case .missingTensor(let path, let name): "\(path): tensor '\(name)' is missing"
        }
    }
}
