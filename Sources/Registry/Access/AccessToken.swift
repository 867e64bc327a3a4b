import Foundation
import HubCore

/// What a token may do. Each scope includes the ones below it: `admin` ⊃ `write` ⊃ `read`.
public enum TokenScope: String, Sendable, Codable, CaseIterable, Comparable {
    /// Read private repositories.
    case read
    /// Also upload blobs, commit revisions, create repositories, tag and record metrics.
    case write
    /// Also create tokens.
    case admin

    private var rank: Int { Self.allCases.firstIndex(of: self)! }
    public static func < (a: Self, b: Self) -> Bool { a.rank < b.rank }
}

/// A token the store recognised: who holds it and what it allows. The secret itself is never
/// stored, only its sha256.
public struct AccessToken: Sendable, Equatable {
    public let id: Int
    public let user: String
    public let label: String
    public let scope: TokenScope

    public init(id: Int, user: String, label: String, scope: TokenScope) {
        self.id = id
        self.user = user
        self.label = label
        self.scope = scope
    }

    public func allows(_ needed: TokenScope) -> Bool { scope >= needed }
}

/// Token secrets: `hub_` and 64 hex digits of system randomness (256 bits), so that a stolen
/// database, which holds only sha256 digests, cannot be turned back into tokens.
public enum TokenSecret {
    public static let prefix = "hub_"

    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0 ..< 32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return prefix + bytes.map { String(format: "%02x", $0) }.joined()
    }

    public static func digest(_ secret: String) -> SHA256Digest {
        SHA256Digest.of(Data(secret.utf8))
    }

    /// Whether a presented string can be a token at all (checked before any lookup).
    public static func isWellFormed(_ secret: String) -> Bool {
        secret.hasPrefix(prefix) && secret.utf8.count == prefix.utf8.count + 64
            && secret.utf8.dropFirst(prefix.utf8.count).allSatisfy { (0x30 ... 0x39).contains($0) || (0x61 ... 0x66).contains($0) }
    }
}

/// The admin token a daemon creates on its first start, in `<data-dir>/admin.token`, readable
/// by its owner alone, so that `hubctl` on the same machine can push without any set-up.
public enum AdminTokenFile {
    public static func url(in dataDirectory: URL) -> URL { dataDirectory.appendingPathComponent("admin.token") }

    /// Creates the first admin token if the registry has no token at all; returns the file's
    /// URL when one was written.
    @discardableResult
    public static func bootstrap(_ registry: HubRegistry) throws -> URL? {
        guard try registry.store.tokenCount() == 0 else { return nil }
        let secret = TokenSecret.generate()
        let destination = url(in: registry.dataDirectory)
        // The file is written (0600, synced) before the token exists in the database: a crash
        // in between leaves an unusable file that the next start replaces, never a token
        // nobody can read.
        let temporary = AtomicFile.temporaryURL(besides: destination)
        try writeOwnerOnly(Data((secret + "\n").utf8), to: temporary)
        try AtomicFile.commit(temporary, to: destination)
        _ = try registry.store.createToken(secretDigest: TokenSecret.digest(secret), user: "admin", label: "bootstrap", scope: .admin)
        return destination
    }

    /// Creates the file with mode 0600 from the start (never readable by others, not even
    /// for a moment), writes and syncs it.
    static func writeOwnerOnly(_ data: Data, to url: URL) throws {
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard descriptor >= 0 else { throw AtomicWriteError.cannotCreate(url.path) }
        defer { close(descriptor) }
        let written = data.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard written == data.count, fsync(descriptor) == 0 else {
            unlink(url.path)
            throw AtomicWriteError.cannotCreate(url.path)
        }
    }

    /// The token in the file, if it exists and can be read.
    public static func read(in dataDirectory: URL) -> String? {
        guard let data = FileManager.default.contents(atPath: url(in: dataDirectory).path) else { return nil }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }
}
