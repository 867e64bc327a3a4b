import Foundation
import HubCore

/// Checks a data directory against every invariant the registry promises: the database is
/// intact, every blob hashes to its address, every registered blob has its bytes, no revision
/// names a blob that is not there, and no upload in progress holds more than it announced.
/// `hubctl fsck` runs it; the crash-safety tests run it after every kill.
public struct RegistryCheck {
    public struct Report: Sendable {
        public var problems: [String] = []
        public var blobsVerified = 0
        public var bytesVerified = 0
        public var revisions = 0
        public var uploadsInProgress = 0

        public var isClean: Bool { problems.isEmpty }
    }

    public let registry: HubRegistry

    public init(registry: HubRegistry) {
        self.registry = registry
    }

    /// `rehash` false skips re-reading blob bytes (sizes are still compared).
    public func run(rehash: Bool = true) throws -> Report {
        guard let store = registry.store as? SQLiteMetadataStore, let blobStore = registry.blobs as? DirectoryBlobStore else {
            throw RegistryError.dataDirectory(path: registry.dataDirectory.path, reason: "fsck understands the SQLite store and the blob directory only")
        }
        let database = store.database
        var report = Report()
        let integrity = try database.query("PRAGMA integrity_check").compactMap { $0.text("integrity_check") }
        if integrity != ["ok"] { report.problems += integrity.map { "SQLite integrity: \($0)" } }
        for row in try database.query("PRAGMA foreign_key_check") {
            report.problems.append("foreign key: a row of \(row.text("table") ?? "?") references a missing \(row.text("parent") ?? "?") row")
        }
        // Blob files: each must hash to its name.
        let root = blobStore.root.appendingPathComponent("sha256")
        var files: [SHA256Digest: Int] = [:]
        for path in (FileManager.default.enumerator(atPath: root.path)?.allObjects as? [String] ?? []) {
            let url = root.appendingPathComponent(path)
            let values = try? url.resourceValues(forKeys: [.isRegularFileKey, .fileSizeKey])
            guard values?.isRegularFile == true else { continue }
            guard let digest = try? SHA256Digest(hex: url.lastPathComponent), path == "\(digest.hex.prefix(2))/\(digest.hex)" else {
                report.problems.append("blob store: unexpected file \(path)")
                continue
            }
            let size = values?.fileSize ?? 0
            files[digest] = size
            if rehash {
                if try SHA256Digest.ofFile(at: url) != digest { report.problems.append("blob \(digest.hex) does not hash to its address") }
                report.blobsVerified += 1
                report.bytesVerified += size
            }
        }
        // Registered blobs: each must have its bytes, of the registered size.
        for row in try database.query("SELECT sha256, size FROM blobs") {
            let digest = try SHA256Digest(hex: row.text("sha256")!)
            guard let size = files[digest] else {
                report.problems.append("blob \(digest.hex) is registered but its file is missing")
                continue
            }
            if size != row.int("size") { report.problems.append("blob \(digest.hex) is registered with \(row.int("size") ?? -1) bytes; its file has \(size)") }
        }
        for row in try database.query("""
            SELECT f.revision_id, f.path, f.blob_sha256 FROM revision_files f LEFT JOIN blobs b ON b.sha256 = f.blob_sha256
            WHERE b.sha256 IS NULL
            """) {
            report.problems.append("revision \(row.text("revision_id") ?? "?") file \(row.text("path") ?? "?") names unregistered blob \(row.text("blob_sha256") ?? "?")")
        }
        report.revisions = try database.query("SELECT count(*) AS n FROM revisions").first?.int("n") ?? 0
        let uploads = try BlobUploads(registry: registry)
        for upload in try store.allUploads() {
            report.uploadsInProgress += 1
            let received = uploads.receivedBytes(upload.id)
            if received > upload.size { report.problems.append("upload \(upload.id) holds \(received) bytes of an announced \(upload.size)") }
        }
        return report
    }
}
