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

extension HubctlBinary {
    public typealias Outcome = Subprocess.Outcome

    /// Runs hubctl to completion with `arguments`, its environment extended by `environment`.
    public static func run(_ arguments: [String], environment: [String: String] = [:], stdin: String? = nil) throws -> Outcome {
        try Subprocess.run(url(), arguments, environment: environment.mapValues { Optional($0) }, stdin: stdin)
    }
}

/// A program run to completion, as the tests run hubctl and the Python reference clients.
public enum Subprocess {
    public struct Outcome: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
    }

    /// Runs `executable` with `arguments`, its environment extended by `environment` (a nil
    /// value removes a variable).
    public static func run(_ executable: URL, _ arguments: [String], environment: [String: String?] = [:], stdin: String? = nil) throws -> Outcome {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        var merged = ProcessInfo.processInfo.environment
        for (name, value) in environment { merged[name] = value }
        process.environment = merged
        let output = Pipe(), errors = Pipe(), input = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        try process.run()
        if let stdin {
            input.fileHandleForWriting.write(Data(stdin.utf8))
            try input.fileHandleForWriting.close()
        }
        // Read both pipes while it runs, so that neither fills and blocks it.
        nonisolated(unsafe) var errorData = Data()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            errorData = errors.fileHandleForReading.readDataToEndOfFile()
            done.signal()
        }
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        done.wait()
        return Outcome(status: process.terminationStatus, stdout: String(decoding: outputData, as: UTF8.self),
                       stderr: String(decoding: errorData, as: UTF8.self))
    }

    /// Runs `python3` with `arguments` (found on PATH, as a user's shell would).
    public static func python(_ arguments: [String], environment: [String: String?] = [:]) throws -> Outcome {
        try run(URL(fileURLWithPath: "/usr/bin/env"), ["python3"] + arguments, environment: environment)
    }
}
