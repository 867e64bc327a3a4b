import Foundation
import HubCore

/// Resumable uploads of blobs. A client announces a blob (sha256 and size), sends its bytes in
/// chunks, each at the offset the server reports, and may stop and resume at any time, even
/// across daemon restarts: the bytes received so far are kept in `uploads/<id>.part` and their
/// count is that file's length. When the last byte arrives the whole file is hashed; only a
/// file whose sha256 matches is moved into the blob store and registered. A blob therefore
/// never exists at an address it does not hash to.
public final class BlobUploads: @unchecked Sendable {
    public struct Status: Sendable, Equatable, Codable {
        public let id: String?
        public let sha256: SHA256Digest
        public let size: Int
        public let offset: Int
        public let complete: Bool
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case notFound(id: String)
        case offsetMismatch(id: String, expected: Int, found: Int)
        case pastEnd(id: String, size: Int, offset: Int, chunk: Int)
        case chunkTooLarge(limit: Int)
        case busy(id: String)
        case digestMismatch(expected: SHA256Digest, found: SHA256Digest)
        case tooLarge(size: Int, limit: Int)
        case sizeConflict(sha256: SHA256Digest, registered: Int, declared: Int)

        public var description: String {
            switch self {
            case .notFound(let id): "no upload '\(id)' (finished, aborted or never started)"
            case .offsetMismatch(let id, let expected, let found):
                "upload \(id) has \(expected) bytes; a chunk must start there, not at \(found)"
            case .pastEnd(let id, let size, let offset, let chunk):
                "upload \(id) is \(size) bytes; a chunk of \(chunk) at offset \(offset) runs past its end"
            case .chunkTooLarge(let limit): "a chunk may be at most \(limit) bytes"
            case .busy(let id): "upload \(id) is receiving another chunk; retry when it finishes"
            case .digestMismatch(let expected, let found):
                "the uploaded bytes hash to \(found.hex), not the announced \(expected.hex); the upload was discarded"
            case .tooLarge(let size, let limit): "a blob of \(size) bytes is over this registry's limit of \(limit)"
            case .sizeConflict(let digest, let registered, let declared):
                "blob \(digest.hex) is registered with \(registered) bytes, not \(declared)"
            }
        }
    }

    public let registry: HubRegistry
    public let directory: URL
    public let maximumChunk: Int
    public let maximumBlob: Int
    private let lock = NSLock()
    private var receiving = Set<String>()

    public init(registry: HubRegistry, maximumChunk: Int = 256 << 20, maximumBlob: Int = 1 << 40) throws {
        self.registry = registry
        directory = registry.dataDirectory.appendingPathComponent("uploads")
        self.maximumChunk = maximumChunk
        self.maximumBlob = maximumBlob
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func partialURL(_ id: String) -> URL { directory.appendingPathComponent("\(id).part") }

    /// Starts (or finds, to resume) the upload of a blob. A blob already stored is reported
    /// complete at once: content addressing makes a second upload pointless.
    public func begin(sha256: SHA256Digest, size: Int, user: String) throws -> Status {
        guard size >= 0, size <= maximumBlob else { throw Failure.tooLarge(size: size, limit: maximumBlob) }
        if let registered = try registry.store.blobSize(sha256) {
            guard registered == size else { throw Failure.sizeConflict(sha256: sha256, registered: registered, declared: size) }
            if registry.blobs.contains(sha256) { return Status(id: nil, sha256: sha256, size: size, offset: size, complete: true) }
        }
        if let existing = try registry.store.uploads(of: sha256).first(where: { $0.size == size }) {
            return try status(existing)
        }
        let id = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let record = try registry.store.createUpload(id: id, sha256: sha256, size: size, user: user)
        FileManager.default.createFile(atPath: partialURL(id).path, contents: nil)
        if size == 0 { return try finish(record) }
        return try status(record)
    }

    public func status(id: String) throws -> Status {
        guard let record = try registry.store.upload(id: id) else { throw Failure.notFound(id: id) }
        return try status(record)
    }

    private func status(_ record: UploadRecord) throws -> Status {
        Status(id: record.id, sha256: record.sha256, size: record.size, offset: receivedBytes(record.id), complete: false)
    }

    func receivedBytes(_ id: String) -> Int {
        (try? FileManager.default.attributesOfItem(atPath: partialURL(id).path)[.size] as? Int) ?? 0
    }

    /// Appends one chunk that must start at the current offset. Chunks of one upload are taken
    /// one at a time. Bytes already written stay if the body breaks off: they are a valid
    /// prefix, and the client resumes after them.
    public func append<Body: AsyncSequence>(id: String, offset: Int, body: Body) async throws -> Status
    where Body.Element: Collection, Body.Element.Element == UInt8 {
        guard let record = try registry.store.upload(id: id) else { throw Failure.notFound(id: id) }
        guard claim(id) else { throw Failure.busy(id: id) }
        defer { release(id) }
        let url = partialURL(id)
        if !FileManager.default.fileExists(atPath: url.path) { FileManager.default.createFile(atPath: url.path, contents: nil) }
        let received = receivedBytes(id)
        guard offset == received else { throw Failure.offsetMismatch(id: id, expected: received, found: offset) }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        var written = 0
        do {
            for try await piece in body {
                written += piece.count
                if written > maximumChunk { throw Failure.chunkTooLarge(limit: maximumChunk) }
                if offset + written > record.size {
                    throw Failure.pastEnd(id: id, size: record.size, offset: offset, chunk: written)
                }
                try handle.write(contentsOf: Data(piece))
            }
        } catch let failure as Failure {
            // A chunk that breaks a rule leaves nothing behind: the upload is as it was.
            try handle.truncate(atOffset: UInt64(offset))
            throw failure
        }
        if offset + written == record.size {
            try handle.synchronize()
            return try await offload { try self.finish(record) }
        }
        return Status(id: id, sha256: record.sha256, size: record.size, offset: offset + written, complete: false)
    }

    /// Verifies a fully received upload and moves it into the blob store.
    private func finish(_ record: UploadRecord) throws -> Status {
        let url = partialURL(record.id)
        let found = try SHA256Digest.ofFile(at: url)
        guard found == record.sha256 else {
            try? FileManager.default.removeItem(at: url)
            try registry.store.deleteUpload(id: record.id)
            throw Failure.digestMismatch(expected: record.sha256, found: found)
        }
        try registry.blobs.adopt(fileAt: url, as: record.sha256)
        try registry.store.registerBlob(record.sha256, size: record.size)
        try registry.store.deleteUpload(id: record.id)
        return Status(id: record.id, sha256: record.sha256, size: record.size, offset: record.size, complete: true)
    }

    /// Drops an upload and its bytes.
    public func abort(id: String) throws {
        guard try registry.store.upload(id: id) != nil else { throw Failure.notFound(id: id) }
        guard claim(id) else { throw Failure.busy(id: id) }
        defer { release(id) }
        try? FileManager.default.removeItem(at: partialURL(id))
        try registry.store.deleteUpload(id: id)
    }

    /// Brings uploads back in step with the files after a crash: an upload whose bytes were
    /// already moved into the blob store is finished, partial files nobody announced are removed.
    public func recover() throws {
        let known = try registry.store.allUploads()
        for record in known where !FileManager.default.fileExists(atPath: partialURL(record.id).path) {
            if registry.blobs.contains(record.sha256), try registry.blobs.verify(record.sha256) {
                try registry.store.registerBlob(record.sha256, size: record.size)
            }
            try registry.store.deleteUpload(id: record.id)
        }
        let ids = Set(known.map(\.id))
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        where !ids.contains(String(name.dropLast(".part".count))) || !name.hasSuffix(".part") {
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
    }

    private func claim(_ id: String) -> Bool {
        lock.withLock { receiving.insert(id).inserted }
    }

    private func release(_ id: String) {
        _ = lock.withLock { receiving.remove(id) }
    }
}
