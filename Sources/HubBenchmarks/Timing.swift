import Foundation

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

/// Median wall time of `repetitions` runs of `body`, in seconds.
func time(_ repetitions: Int, _ body: () throws -> Void) rethrows -> Double {
    var samples: [Double] = []
    for _ in 0 ..< repetitions {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return median(samples)
}

/// Shortest wall time of `repetitions` runs of `body`, in seconds (for baselines: the
/// machine's best, so ratios against it are conservative).
func fastest(_ repetitions: Int, _ body: () throws -> Void) rethrows -> Double {
    var best = Double.infinity
    for _ in 0 ..< repetitions { best = min(best, try time(1, body)) }
    return best
}

/// Runs a script from benchmarks/ with `$HUB_TORCH_PYTHON` (default python3) and returns the
/// JSON object on its last line of output, or nil when it cannot run (no torch, say).
func pythonBaseline(_ script: String, _ arguments: [String]) -> [String: Any]? {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("benchmarks").appendingPathComponent(script)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [ProcessInfo.processInfo.environment["HUB_TORCH_PYTHON"] ?? "python3", url.path] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return nil }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0, let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last else { return nil }
    return try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
}
