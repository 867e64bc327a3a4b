import Crypto
import Foundation

/// A SHA-256 digest, the identity of every blob the hub stores or verifies.
public struct SHA256Digest: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    /// Lower-case hexadecimal, 64 characters.
    public let hex: String

    public init(hex: String) throws(DigestError) {
        let lowered = hex.lowercased()
        guard lowered.utf8.count == 64, lowered.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
            throw .malformed(hex)
        }
        self.hex = lowered
    }

    init(bytes: some Sequence<UInt8>) {
        self.hex = bytes.map { String(format: "%02x", $0) }.joined()
    }

    public var description: String { hex }
    public static func < (a: Self, b: Self) -> Bool { a.hex < b.hex }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        try self.init(hex: text)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }

    /// The digest of bytes held in memory.
    public static func of(_ data: some DataProtocol) -> SHA256Digest {
        var hasher = SHA256Hasher()
        hasher.update(data)
        return hasher.finalize()
    }

    public static func of(_ buffer: UnsafeRawBufferPointer) -> SHA256Digest {
        var hasher = SHA256Hasher()
        hasher.update(buffer)
        return hasher.finalize()
    }

    /// The digest of a file, read in fixed-size chunks so that memory stays flat for any size.
    public static func ofFile(at url: URL) throws -> SHA256Digest {
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw DigestError.unreadable(url.path)
        }
        defer { try? handle.close() }
        var hasher = SHA256Hasher()
        while true {
            let chunk = try handle.read(upToCount: 4 << 20) ?? Data()
            if chunk.isEmpty { break }
            hasher.update(chunk)
        }
        return hasher.finalize()
    }
}

/// Incremental SHA-256, for data that arrives in pieces (uploads, downloads, tensor streams).
public struct SHA256Hasher: Sendable {
    private var state = Crypto.SHA256()
    public private(set) var byteCount: Int = 0

    public init() {}

    public mutating func update(_ data: some DataProtocol) {
        state.update(data: data)
        byteCount += data.count
    }

    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        state.update(bufferPointer: buffer)
        byteCount += buffer.count
    }

    public func finalize() -> SHA256Digest {
        SHA256Digest(bytes: state.finalize())
    }
}

public enum DigestError: Error, Equatable, CustomStringConvertible {
    case malformed(String)
    case unreadable(String)
    case mismatch(what: String, expected: SHA256Digest, found: SHA256Digest)

    public var description: String {
        switch self {
        case .malformed(let text): "not a sha256 digest (expected 64 hex characters): '\(text.prefix(80))'"
        case .unreadable(let path): "cannot read \(path) to hash it"
        case .mismatch(let what, let expected, let found):
            "sha256 mismatch for \(what): expected \(expected.hex), found \(found.hex)"
        }
    }
}
