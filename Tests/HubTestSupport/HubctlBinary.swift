import Foundation

/// The `hubctl` executable that `swift test` built beside the test bundle, for the tests that
/// run it as its own process (to kill it, as a user's shell would).
public enum HubctlBinary {
    public struct NotFound: Error, CustomStringConvertible {
        public let searched: [String]
        public var description: String { "no hubctl executable beside the tests (looked in \(searched.joined(separator: ", ")))" }
    }

    public static func url() throws -> URL {
        let candidates = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
                          Bundle.main.bundleURL.deletingLastPathComponent(), Bundle.main.bundleURL]
        for directory in candidates {
            let url = directory.appendingPathComponent("hubctl")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw NotFound(searched: candidates.map(\.path))
    }
}
