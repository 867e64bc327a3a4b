import Foundation
import HubCore

/// Reclaims space that no revision uses: registered blobs no revision references (left by
/// commits that failed or never came), blob files nothing registered, and uploads abandoned
/// part-way. Only what is older than a grace period goes, so that an upload finished a moment
/// ago, whose commit is on its way, is never taken from under it.
public struct GarbageCollector {
    public struct Report: Sendable, Equatable {
        public var blobs = 0
        public var bytes = 0
        public var uploads = 0
    }

    public let registry: HubRegistry

    public init(registry: HubRegistry) {
        self.registry = registry
    }

    public func run(grace: TimeInterval = 24 * 3600, dryRun: Bool = false) throws -> Report {
        guard let store = registry.store as? SQLiteMetadataStore, let blobStore = registry.blobs as? DirectoryBlobStore else {
            throw RegistryError.dataDirectory(path: registry.dataDirectory.path, reason: "gc understands the SQLite store and the blob directory only")
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let cutoff = Date().addingTimeInterval(-grace)
        var report = Report()

        // A blob row goes only if it is still unreferenced inside the deleting transaction, so
        // a commit that got there first keeps it; its file goes after the row.
        for row in try store.database.query("""
            SELECT sha256, size FROM blobs b WHERE created_at < ?
            AND NOT EXISTS (SELECT 1 FROM revision_files f WHERE f.blob_sha256 = b.sha256)
            """, [.text(formatter.string(from: cutoff))]) {
            let digest = try SHA256Digest(hex: row.text("sha256")!)
            if !dryRun {
                let deleted = try store.database.transaction {
                    try store.database.query("""
                        DELETE FROM blobs WHERE sha256 = ? AND NOT EXISTS (SELECT 1 FROM revision_files WHERE blob_sha256 = ?)
                        """, [.text(digest.hex), .text(digest.hex)])
                    return try store.database.query("SELECT changes() AS n").first?.int("n") == 1
                }
                guard deleted else { continue }
                try? FileManager.default.removeItem(at: blobStore.path(for: digest))
            }
            report.blobs += 1
            report.bytes += row.int("size") ?? 0
        }
        // Files in the store that nothing registered (an ingest or adopt cut short).
        let root = blobStore.root.appendingPathComponent("sha256")
        for path in (FileManager.default.enumerator(atPath: root.path)?.allObjects as? [String] ?? []) {
            let url = root.appendingPathComponent(path)
            let values = try? url.resourceValues(forKeys: [.isRegularFileKey, .contentModificationDateKey, .fileSizeKey])
            guard values?.isRegularFile == true, let modified = values?.contentModificationDate, modified < cutoff,
                  let digest = try? SHA256Digest(hex: url.lastPathComponent), try store.blobSize(digest) == nil else { continue }
            if !dryRun { try? FileManager.default.removeItem(at: url) }
            report.blobs += 1
            report.bytes += values?.fileSize ?? 0
        }
        let uploads = try BlobUploads(registry: registry)
        for upload in try store.allUploads() {
            guard let started = formatter.date(from: upload.createdAt), started < cutoff else { continue }
            if !dryRun { try? uploads.abort(id: upload.id) }
            report.uploads += 1
        }
        return report
    }
}
