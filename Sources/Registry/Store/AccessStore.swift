import HubCore

/// Users and their tokens. Only sha256 digests of token secrets are stored.
public protocol AccessStore: Sendable {
    func tokenCount() throws -> Int
    /// Stores a token for `user` (created if new) and returns it.
    func createToken(secretDigest: SHA256Digest, user: String, label: String, scope: TokenScope) throws -> AccessToken
    /// The live (not revoked) token with this secret digest.
    func token(secretDigest: SHA256Digest) throws -> AccessToken?
    /// Every token, revoked ones included, without their digests.
    func tokens() throws -> [TokenListing]
    /// Revokes a token for good; false when no live token has this id.
    func revokeToken(id: Int) throws -> Bool
}

/// A token as an admin sees it in a listing: never its secret, nor the secret's digest.
public struct TokenListing: Sendable, Equatable, Codable {
    public let id: Int
    public let user: String
    public let label: String
    public let scope: TokenScope
    public let createdAt: String
    public let revokedAt: String?

    enum CodingKeys: String, CodingKey {
        case id, user, label, scope, createdAt = "created_at", revokedAt = "revoked_at"
    }
}

/// An upload in progress: the blob it will become and who started it. The bytes received so
/// far live beside the blob store; how many there are is the length of that file.
public struct UploadRecord: Sendable, Equatable {
    public let id: String
    public let sha256: SHA256Digest
    public let size: Int
    public let user: String
    public let createdAt: String
}

public protocol UploadRecordStore: Sendable {
    func createUpload(id: String, sha256: SHA256Digest, size: Int, user: String) throws -> UploadRecord
    func upload(id: String) throws -> UploadRecord?
    func uploads(of digest: SHA256Digest) throws -> [UploadRecord]
    func allUploads() throws -> [UploadRecord]
    func deleteUpload(id: String) throws
    /// The size of a registered blob, or nil when the blob is not registered.
    func blobSize(_ digest: SHA256Digest) throws -> Int?
}
