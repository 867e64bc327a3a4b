import CArchive
import Foundation
import HubCore

/// Imports a bundle `BundleExporter` wrote, refusing anything that could write outside the
/// bundle's own files or smuggle in bytes the manifest does not vouch for: entries with
/// absolute paths, `..`, links or other non-regular types, entries the manifest does not list,
/// and sizes or hashes that disagree with it. Everything is checked before anything is
/// committed; a refused bundle leaves the registry as it was.
public struct BundleImporter {
    public struct Result: Sendable {
        public let revision: Revision
        public let manifest: BundleManifest
        /// The lineage edge, when the parent revision is in this registry.
        public let lineageRestored: Bool
    }

    public let registry: HubRegistry
    /// The largest manifest accepted.
    public var manifestLimit = 16 << 20

    public init(registry: HubRegistry) {
        self.registry = registry
    }

    public func importBundle(at url: URL, as target: RepositoryName? = nil, author: String) throws -> Result {
        let path = url.path
        guard let archive = archive_read_new() else { throw BundleError.archive(path: path, message: "out of memory") }
        defer { archive_read_free(archive) }
        archive_read_support_filter_all(archive)
        archive_read_support_format_tar(archive)
        guard archive_read_open_filename(archive, path, 1 << 20) == ARCHIVE_OK else {
            throw BundleError.notABundle(path: path, reason: String(cString: archive_error_string(archive)))
        }
        let staging = registry.scratchDirectory()
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: staging) }

        var manifest: BundleManifest?
        var staged: [String: (url: URL, digest: SHA256Digest)] = [:]
        var entry: OpaquePointer?
        while true {
            let status = archive_read_next_header(archive, &entry)
            if status == ARCHIVE_EOF { break }
            guard status >= ARCHIVE_WARN, let entry else { throw BundleError.archive(path: path, message: String(cString: archive_error_string(archive))) }
            let name = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
            try checkSafe(name, entry: entry, bundle: path)
            if archive_entry_filetype(entry) == hub_archive_directory { continue }
            guard let manifest else {
                guard name == "manifest.json" else { throw BundleError.notABundle(path: path, reason: "the first entry is '\(name)', not manifest.json") }
                manifest = try readManifest(archive, entry: entry, bundle: path)
                continue
            }
            guard name.hasPrefix("files/"), let file = manifest.files.first(where: { "files/" + $0.path == name }) else {
                throw BundleError.unsafeEntry(path: path, entry: name, reason: "the manifest does not list it")
            }
            guard staged[file.path] == nil else { throw BundleError.unsafeEntry(path: path, entry: name, reason: "it appears twice") }
            if archive_entry_size_is_set(entry) != 0, Int(archive_entry_size(entry)) != file.size {
                throw BundleError.sizeMismatch(path: path, entry: name, manifest: file.size, found: Int(archive_entry_size(entry)))
            }
            let destination = staging.appendingPathComponent("\(staged.count).blob")
            let (digest, size) = try extract(archive, to: destination, limit: file.size, entryName: name, bundle: path)
            guard size == file.size else { throw BundleError.sizeMismatch(path: path, entry: name, manifest: file.size, found: size) }
            guard digest == file.sha256 else { throw BundleError.digestMismatch(path: path, entry: name, manifest: file.sha256, found: digest) }
            staged[file.path] = (destination, digest)
        }
        guard let manifest else { throw BundleError.notABundle(path: path, reason: "it is empty") }
        let missing = manifest.files.map(\.path).filter { staged[$0] == nil }
        guard missing.isEmpty else { throw BundleError.missingFiles(path: path, files: missing) }
        return try commit(manifest, staged: staged, as: target ?? manifest.repository, author: author, bundle: url)
    }

    private func checkSafe(_ name: String, entry: OpaquePointer, bundle: String) throws {
        if name.isEmpty { throw BundleError.unsafeEntry(path: bundle, entry: name, reason: "it has no name") }
        if name.hasPrefix("/") { throw BundleError.unsafeEntry(path: bundle, entry: name, reason: "absolute paths are not allowed") }
        if name.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0 == ".." }) {
            throw BundleError.unsafeEntry(path: bundle, entry: name, reason: "'..' is not allowed")
        }
        if archive_entry_symlink(entry) != nil || archive_entry_hardlink(entry) != nil {
            throw BundleError.unsafeEntry(path: bundle, entry: name, reason: "links are not allowed")
        }
        let type = archive_entry_filetype(entry)
        guard type == hub_archive_regular_file || type == hub_archive_directory else {
            throw BundleError.unsafeEntry(path: bundle, entry: name, reason: "only regular files are allowed")
        }
    }

    private func readManifest(_ archive: OpaquePointer, entry: OpaquePointer, bundle: String) throws -> BundleManifest {
        let declared = Int(archive_entry_size(entry))
        guard declared > 0, declared <= manifestLimit else {
            throw BundleError.notABundle(path: bundle, reason: "manifest.json has \(declared) bytes (at most \(manifestLimit))")
        }
        var data = Data(count: declared)
        let read = data.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, declared) }
        guard read == declared else { throw BundleError.notABundle(path: bundle, reason: "manifest.json is truncated") }
        let manifest: BundleManifest
        do { manifest = try JSONDecoder().decode(BundleManifest.self, from: data) } catch {
            throw BundleError.notABundle(path: bundle, reason: "manifest.json does not decode (\(error))")
        }
        guard manifest.format == BundleManifest.formatName, manifest.formatVersion == 1 else {
            throw BundleError.notABundle(path: bundle, reason: "format '\(manifest.format)' version \(manifest.formatVersion), expected \(BundleManifest.formatName) 1")
        }
        for file in manifest.files { try RevisionPath.validate(file.path) }
        return manifest
    }

    /// Streams an entry's data to `url`, hashing it; stops as soon as it runs past `limit`.
    private func extract(_ archive: OpaquePointer, to url: URL, limit: Int, entryName: String, bundle: String) throws -> (SHA256Digest, Int) {
        FileManager.default.createFile(atPath: url.path, contents: nil)
        let output = try FileHandle(forWritingTo: url)
        defer { try? output.close() }
        var hasher = SHA256Hasher()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var total = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { archive_read_data(archive, $0.baseAddress, $0.count) }
            if count == 0 { break }
            guard count > 0 else { throw BundleError.archive(path: bundle, message: String(cString: archive_error_string(archive))) }
            total += count
            if total > limit { throw BundleError.sizeMismatch(path: bundle, entry: entryName, manifest: limit, found: total) }
            let chunk = Data(buffer[0 ..< count])
            hasher.update(chunk)
            try output.write(contentsOf: chunk)
        }
        try output.synchronize()
        return (hasher.finalize(), total)
    }

    private func commit(_ manifest: BundleManifest, staged: [String: (url: URL, digest: SHA256Digest)], as repository: RepositoryName,
                        author: String, bundle: URL) throws -> Result {
        for file in manifest.files {
            let blob = staged[file.path]!
            try registry.blobs.adopt(fileAt: blob.url, as: blob.digest)
            try registry.store.registerBlob(blob.digest, size: file.size)
        }
        var lineage: (parentRevisionID: String, recipeJSON: String)?
        if let edge = manifest.lineage {
            // The parent as it was exported, or a bundle import or mirror of it (their source
            // records name the original revision).
            if try registry.store.variant(of: edge.parentRevisionID) != nil {
                lineage = (edge.parentRevisionID, edge.recipeJSON)
            } else if let copy = try registry.store.variants(withSource: ["revision": edge.parentRevisionID], in: nil).last {
                lineage = (copy.id, edge.recipeJSON)
            }
        }
        var source: [String: Any] = ["format": "bundle", "file": bundle.lastPathComponent, "repository": manifest.repository.description,
                                     "revision": manifest.revision.id]
        if let edge = manifest.lineage, lineage == nil { source["lineage_parent_revision"] = edge.parentRevisionID }
        if let original = manifest.variant?.sourceJSON.flatMap({ try? JSONSerialization.jsonObject(with: Data($0.utf8)) }) {
            source["original_source"] = original
        }
        let sourceJSON = String(decoding: try JSONSerialization.data(withJSONObject: source, options: [.sortedKeys, .withoutEscapingSlashes]),
                                as: UTF8.self)
        var new = NewRevision(repository: repository, message: manifest.revision.message, author: author, files: manifest.files)
        new.variant = manifest.variant.map {
            VariantRecord(kind: $0.kind, architecture: $0.architecture, parameters: $0.parameters, embeddingParameters: $0.embeddingParameters,
                          bytes: $0.bytes, configJSON: $0.configJSON, sourceJSON: sourceJSON)
        }
        new.lineage = lineage
        new.createsRepository = .public
        let revision = try registry.store.commit(new)
        if new.variant != nil {
            for metrics in manifest.metrics {
                try registry.store.recordMetrics(StoredMetrics(revisionID: revision.id, suite: metrics.suite, cpuModel: metrics.cpuModel,
                                                               blasThreads: metrics.blasThreads, recordJSON: metrics.recordJSON,
                                                               createdAt: metrics.createdAt))
            }
        }
        return Result(revision: revision, manifest: manifest, lineageRestored: lineage != nil || manifest.lineage == nil)
    }
}
