import HubCore

/// The first entry of a bundle, `manifest.json` (`schemas/bundle-manifest.schema.json`): which
/// revision the bundle holds, every file with its sha256 and size, and the variant, lineage and
/// metrics records that go with it. The files follow as `files/<path>`.
public struct BundleManifest: Codable, Sendable, Equatable {
    public static let formatName = "compression-hub-bundle"

    public var format = BundleManifest.formatName
    public var formatVersion = 1
    public let repository: RepositoryName
    public let revision: Revision
    public let files: [RevisionFile]
    public let variant: VariantRecord?
    public let lineage: LineageEdge?
    public let metrics: [StoredMetrics]
    public let exportedBy: String

    enum CodingKeys: String, CodingKey {
        case format, formatVersion = "format_version", repository, revision, files, variant, lineage, metrics
        case exportedBy = "exported_by"
    }
}

public enum BundleError: Error, Equatable, CustomStringConvertible {
    case archive(path: String, message: String)
    case notABundle(path: String, reason: String)
    case unsafeEntry(path: String, entry: String, reason: String)
    case sizeMismatch(path: String, entry: String, manifest: Int, found: Int)
    case digestMismatch(path: String, entry: String, manifest: SHA256Digest, found: SHA256Digest)
    case missingFiles(path: String, files: [String])
    case outputExists(String)

    public var description: String {
        switch self {
        case .archive(let path, let message): "\(path): \(message)"
        case .notABundle(let path, let reason): "\(path) is not a hub bundle: \(reason)"
        case .unsafeEntry(let path, let entry, let reason): "\(path): entry '\(entry)' refused: \(reason); nothing was imported"
        case .sizeMismatch(let path, let entry, let manifest, let found):
            "\(path): entry '\(entry)' has \(found) bytes but the manifest says \(manifest); nothing was imported"
        case .digestMismatch(let path, let entry, let manifest, let found):
            "\(path): entry '\(entry)' hashes to \(found.hex) but the manifest says \(manifest.hex); nothing was imported"
        case .missingFiles(let path, let files): "\(path): the manifest lists files the archive lacks: \(files.joined(separator: ", "))"
        case .outputExists(let path): "\(path) already exists; choose another output or remove it"
        }
    }
}
