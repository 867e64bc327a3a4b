import CArchive
import Foundation
import HubCore

/// Any task of BIG-bench, taken on demand from the `bigbench` sdist that set-up fetched and
/// verified: its 1,041 task files hold 1.7 GB, too much to unpack up front, so a task named
/// for the first time is extracted alone (about 8 s to stream the archive) into the task
/// directory, after the archive's sha256 is checked again against its pin.
public struct BigBenchSdist: Sendable {
    /// `scripts/assets.sha256`'s pin for downloads/bigbench-1.0.0.tar.gz.
    public static let pinnedSHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
    static let prefix = "bigbench-1.0.0/bigbench/benchmark_tasks/"
    /// No task file in the sdist is larger; a bigger entry is refused rather than written.
    static let sizeLimit = 512 << 20

    public let archive: URL

    /// The sdist in the asset cache beside a task directory (`$HUB_CACHE/bigbench`).
    public init(besides taskDirectory: URL) {
        archive = taskDirectory.deletingLastPathComponent().appendingPathComponent("downloads/bigbench-1.0.0.tar.gz")
    }

    public init(archive: URL) {
        self.archive = archive
    }

    /// Extracts `relativePath` (e.g. `logical_deduction/three_objects/task.json`) into
    /// `directory`, atomically. Throws `missingFile` when the sdist is absent and
    /// `unknownTask` when it has no such file.
    public func extract(_ relativePath: String, into directory: URL) throws {
        guard !relativePath.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }), !relativePath.hasPrefix("/") else {
            throw EvaluatorError.unknownTask(relativePath, known: [])
        }
        guard FileManager.default.fileExists(atPath: archive.path) else { throw EvaluatorError.missingFile(archive.path) }
        let digest = try SHA256Digest.ofFile(at: archive)
        guard digest.hex == Self.pinnedSHA256 else {
            throw EvaluatorError.invalidTask(path: archive.path, reason: "the sdist hashes to \(digest.hex), not its pin; run scripts/fetch-assets.sh")
        }
        guard let reader = archive_read_new() else { throw EvaluatorError.missingFile(archive.path) }
        defer { archive_read_free(reader) }
        archive_read_support_filter_all(reader)
        archive_read_support_format_tar(reader)
        guard archive_read_open_filename(reader, archive.path, 1 << 20) == ARCHIVE_OK else {
            throw EvaluatorError.invalidTask(path: archive.path, reason: String(cString: archive_error_string(reader)))
        }
        let wanted = Self.prefix + relativePath
        var entry: OpaquePointer?
        while archive_read_next_header(reader, &entry) >= ARCHIVE_WARN, let entry {
            guard archive_entry_pathname(entry).map({ String(cString: $0) }) == wanted else { continue }
            let size = Int(archive_entry_size(entry))
            guard size > 0, size <= Self.sizeLimit else {
                throw EvaluatorError.invalidTask(path: wanted, reason: "\(size) bytes in the sdist")
            }
            var data = Data(count: size)
            let read = data.withUnsafeMutableBytes { archive_read_data(reader, $0.baseAddress, size) }
            guard read == size else { throw EvaluatorError.invalidTask(path: wanted, reason: "truncated in the sdist") }
            let destination = directory.appendingPathComponent(relativePath)
            try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
            try AtomicFile.write(data, to: destination)
            return
        }
        throw EvaluatorError.unknownTask(relativePath, known: [])
    }
}
