/// A repository's `namespace/name`, validated so that it can never escape a directory or
/// a URL path: letters, digits, `_`, `.` and `-`, 1 to 96 characters each part, no leading or
/// trailing `.` or `-`, and no `..` or `--`.
public struct RepositoryName: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    public let namespace: String
    public let name: String

    public init(_ text: String) throws(RepositoryNameError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw .notNamespaced(text) }
        try self.init(namespace: String(parts[0]), name: String(parts[1]))
    }

    public init(namespace: String, name: String) throws(RepositoryNameError) {
        for part in [namespace, name] {
            if let reason = Self.problem(with: part) { throw .invalidPart(part: part, reason: reason) }
        }
        self.namespace = namespace
        self.name = name
    }

    static func problem(with part: String) -> String? {
        if part.isEmpty || part.utf8.count > 96 { return "must be 1 to 96 characters" }
        if !part.utf8.allSatisfy({ b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F || b == 0x2E || b == 0x2D
        }) { return "only letters, digits, '_', '.' and '-' are allowed" }
        if part.hasPrefix(".") || part.hasPrefix("-") || part.hasSuffix(".") || part.hasSuffix("-") {
            return "must not start or end with '.' or '-'"
        }
        if part.contains("..") || part.contains("--") { return "must not contain '..' or '--'" }
        return nil
    }

    public var description: String { "\(namespace)/\(name)" }
    public static func < (a: Self, b: Self) -> Bool { a.description < b.description }

    public init(from decoder: Decoder) throws {
        try self.init(try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

public enum RepositoryNameError: Error, Equatable, CustomStringConvertible {
    case notNamespaced(String)
    case invalidPart(part: String, reason: String)

    public var description: String {
        switch self {
        case .notNamespaced(let text): "repository name '\(text)' must have the form namespace/name"
        case .invalidPart(let part, let reason): "repository name part '\(part)': \(reason)"
        }
    }
}
