public enum RuntimeError: Error, Equatable, CustomStringConvertible {
    case missingTensor(String)
    case unexpectedTensor(String)
    case shapeMismatch(tensor: String, expected: [Int], found: [Int])
    case unsupportedDType(tensor: String, dtype: String)
    case unsupported(String)
    case invalidWeights(String)
    case tokenOutOfRange(token: Int, vocabularySize: Int)
    case contextOverflow(needed: Int, limit: Int)
    case emptyInput

    public var description: String {
        switch self {
        case .missingTensor(let name): "the checkpoint lacks tensor '\(name)'"
        case .unexpectedTensor(let name): "the checkpoint has tensor '\(name)', which this config does not use"
        case .shapeMismatch(let tensor, let expected, let found): "tensor '\(tensor)' should have shape \(expected), found \(found)"
        case .unsupportedDType(let tensor, let dtype): "tensor '\(tensor)' has dtype \(dtype); the runtime reads F32, F16 and BF16, and U8 blocks in a quantized checkpoint"
        case .unsupported(let what): "unsupported: \(what)"
        case .invalidWeights(let reason): "invalid weights: \(reason)"
        case .tokenOutOfRange(let token, let size): "token id \(token) is outside the vocabulary of \(size)"
        case .contextOverflow(let needed, let limit): "\(needed) positions exceed the model's context of \(limit)"
        case .emptyInput: "no tokens to process"
        }
    }
}
