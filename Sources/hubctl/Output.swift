import Foundation

/// Results go to stdout; progress and diagnostics to stderr, so scripts can pipe results.
enum Output {
    static func progress(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    /// A one-line progress bar redrawn in place on a terminal; only the final line elsewhere.
    static func bar(_ label: String, done: Int, total: Int) {
        guard isatty(STDERR_FILENO) != 0 || done == total else { return }
        let width = 30
        let filled = total > 0 ? width * done / total : width
        let line = "\r\(label) [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] \(done)/\(total)"
        FileHandle.standardError.write(Data((line + (done == total ? "\n" : "")).utf8))
    }

    /// Bytes moving: redrawn in place on a terminal, silent elsewhere (the command prints a summary).
    static func transfer(_ label: String, done: Int, total: Int) {
        guard isatty(STDERR_FILENO) != 0 else { return }
        let percent = total > 0 ? 100 * done / total : 100
        FileHandle.standardError.write(Data("\r\(label): \(bytes(done)) of \(bytes(total)) (\(percent)%)\u{1B}[K".utf8))
    }

    static func json(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static func bytes(_ count: Int) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var value = Double(count)
        var unit = 0
        while value >= 1000, unit < units.count - 1 { value /= 1000; unit += 1 }
        return unit == 0 ? "\(count) B" : String(format: "%.1f %@", value, units[unit])
    }
}
