import CArchive
import Foundation
import HubCore

/// Writes one revision of a repository as a zstd-compressed tar: `manifest.json`, then each
/// file as `files/<path>`, streamed from the blob store. The bundle appears at its path whole
/// or not at all.
public struct BundleExporter {
    public let registry: HubRegistry

    public init(registry: HubRegistry) {
        self.registry = registry
    }

    @discardableResult
    public func export(_ repository: RepositoryName, revision: String = "main", to output: URL) throws -> BundleManifest {
        guard !FileManager.default.fileExists(atPath: output.path) else { throw BundleError.outputExists(output.path) }
        guard let resolved = try registry.store.resolve(repository, revision: revision) else {
            throw RegistryError.revisionNotFound(repository: repository, revision: revision)
        }
        let manifest = BundleManifest(repository: repository, revision: resolved, files: try registry.store.files(of: resolved.id),
                                      variant: try registry.store.variant(of: resolved.id), lineage: try registry.store.lineage(of: resolved.id),
                                      metrics: try registry.store.metrics(of: resolved.id), exportedBy: "hubctl \(HubVersion.current)")
        let temporary = AtomicFile.temporaryURL(besides: output)
        do {
            try write(manifest, to: temporary)
            try AtomicFile.commit(temporary, to: output)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
        return manifest
    }

    private func write(_ manifest: BundleManifest, to url: URL) throws {
        guard let archive = archive_write_new() else { throw BundleError.archive(path: url.path, message: "out of memory") }
        defer { archive_write_free(archive) }
        func check(_ status: Int32) throws {
            if status < ARCHIVE_WARN { throw BundleError.archive(path: url.path, message: String(cString: archive_error_string(archive))) }
        }
        try check(archive_write_set_format_pax_restricted(archive))
        try check(archive_write_add_filter_zstd(archive))
        try check(archive_write_open_filename(archive, url.path))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        let manifestData = try encoder.encode(manifest)
        try entry(archive, name: "manifest.json", size: manifestData.count, check: check)
        try manifestData.withUnsafeBytes { bytes in
            guard archive_write_data(archive, bytes.baseAddress, bytes.count) == bytes.count else { try check(ARCHIVE_FATAL); return }
        }
        for file in manifest.files {
            try entry(archive, name: "files/" + file.path, size: file.size, check: check)
            guard let input = FileHandle(forReadingAtPath: try registry.blobs.fileURL(for: file.sha256).path) else {
                throw RegistryError.blobMissing(file.sha256)
            }
            defer { try? input.close() }
            while let chunk = try input.read(upToCount: 4 << 20), !chunk.isEmpty {
                try chunk.withUnsafeBytes { bytes in
                    guard archive_write_data(archive, bytes.baseAddress, bytes.count) == bytes.count else { try check(ARCHIVE_FATAL); return }
                }
            }
        }
        try check(archive_write_close(archive))
        let descriptor = open(url.path, O_RDONLY)
        if descriptor >= 0 { fsync(descriptor); close(descriptor) }
    }

    private func entry(_ archive: OpaquePointer, name: String, size: Int, check: (Int32) throws -> Void) throws {
        guard let entry = archive_entry_new() else { throw BundleError.archive(path: name, message: "out of memory") }
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname(entry, name)
        archive_entry_set_size(entry, la_int64_t(size))
        archive_entry_set_filetype(entry, hub_archive_regular_file)
        archive_entry_set_perm(entry, 0o644)
        archive_entry_set_mtime(entry, 0, 0)
        try check(archive_write_header(archive, entry))
    }
}
