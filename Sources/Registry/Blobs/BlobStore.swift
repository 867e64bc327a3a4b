import Foundation
import HubCore

/// File bytes, addressed by their sha256. A local directory is the embedded default; the
/// protocol is the seam where an object store would plug in.
public protocol BlobStore: Sendable {
    /// Copies a file into the store, hashing it on the way; if `expected` is given and the
    /// bytes do not match, nothing is stored.
    func ingest(fileAt url: URL, expected: SHA256Digest?) throws -> (digest: SHA256Digest, size: Int)
    /// Moves a file whose sha256 the caller has just verified into the store (an upload that
    /// finished); the file is gone from `url` afterwards.
    func adopt(fileAt url: URL, as digest: SHA256Digest) throws
    func contains(_ digest: SHA256Digest) -> Bool
    /// A local file holding the blob's bytes, for reading.
    func fileURL(for digest: SHA256Digest) throws -> URL
    /// Re-hashes a stored blob and reports whether it still matches its address.
    func verify(_ digest: SHA256Digest) throws -> Bool
}

/// Blobs as files under `root/sha256/ab/abcdef…`. A blob is written to `root/tmp` while being
/// hashed, flushed, and renamed into place, so a crash never leaves a partial blob at an address.
public final class DirectoryBlobStore: BlobStore, @unchecked Sendable {
    public let root: URL

    public init(root: URL) throws {
        self.root = root
        try FileManager.default.createDirectory(at: root.appendingPathComponent("tmp"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("sha256"), withIntermediateDirectories: true)
    }

    func path(for digest: SHA256Digest) -> URL {
        root.appendingPathComponent("sha256").appendingPathComponent(String(digest.hex.prefix(2))).appendingPathComponent(digest.hex)
    }

    public func contains(_ digest: SHA256Digest) -> Bool {
        FileManager.default.fileExists(atPath: path(for: digest).path)
    }

    public func fileURL(for digest: SHA256Digest) throws -> URL {
        let url = path(for: digest)
        guard FileManager.default.fileExists(atPath: url.path) else { throw RegistryError.blobMissing(digest) }
        return url
    }

    public func ingest(fileAt url: URL, expected: SHA256Digest? = nil) throws -> (digest: SHA256Digest, size: Int) {
        guard let input = FileHandle(forReadingAtPath: url.path) else {
            throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: url.path])
        }
        defer { try? input.close() }
        let temporary = root.appendingPathComponent("tmp").appendingPathComponent(UUID().uuidString)
        var hasher = SHA256Hasher()
        do {
            try AtomicFile.write(to: temporary) { output in
                while true {
                    let chunk = try input.read(upToCount: 4 << 20) ?? Data()
                    if chunk.isEmpty { break }
                    hasher.update(chunk)
                    try output.write(contentsOf: chunk)
                }
            }
            let digest = hasher.finalize()
            if let expected, expected != digest {
                throw DigestError.mismatch(what: url.lastPathComponent, expected: expected, found: digest)
            }
            let destination = path(for: digest)
            if FileManager.default.fileExists(atPath: destination.path) {
                try FileManager.default.removeItem(at: temporary)
            } else {
                try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
                try AtomicFile.commit(temporary, to: destination)
            }
            return (digest, hasher.byteCount)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
    }

    public func adopt(fileAt url: URL, as digest: SHA256Digest) throws {
        let destination = path(for: digest)
        if FileManager.default.fileExists(atPath: destination.path) {
            try FileManager.default.removeItem(at: url)
            return
        }
        try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
        try AtomicFile.commit(url, to: destination)
    }

    /// Removes leftovers of interrupted ingests (never a blob: those are renamed out of tmp).
    public func removeTemporaryFiles() {
        let temporary = root.appendingPathComponent("tmp")
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? [] {
            try? FileManager.default.removeItem(at: temporary.appendingPathComponent(name))
        }
    }

    public func verify(_ digest: SHA256Digest) throws -> Bool {
        try SHA256Digest.ofFile(at: fileURL(for: digest)) == digest
    }
}
