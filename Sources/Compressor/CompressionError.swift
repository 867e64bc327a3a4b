public enum CompressionError: Error, Equatable, CustomStringConvertible {
    case unknownMethod(String, known: [String])
    case ratioUnreachable(requested: Double, maximum: Double, reason: String)
    case calibrationMissing(method: String)
    case calibrationTooShort(tokens: Int, needed: Int)
    case unsupportedModel(String)
    case missingTensor(String)

    public var description: String {
        switch self {
        case .unknownMethod(let name, let known): "unknown compression method '\(name)' (known: \(known.joined(separator: ", ")))"
        case .ratioUnreachable(let requested, let maximum, let reason):
            String(format: "ratio %.3f cannot be reached: at most %.3f with this method, because %@", requested, maximum, reason)
        case .calibrationMissing(let method): "method '\(method)' needs calibration text"
        case .calibrationTooShort(let tokens, let needed): "calibration text has \(tokens) tokens; at least \(needed) are needed"
        case .unsupportedModel(let reason): "this model cannot be compressed: \(reason)"
        case .missingTensor(let name): "the checkpoint lacks tensor '\(name)'"
        }
    }
}
