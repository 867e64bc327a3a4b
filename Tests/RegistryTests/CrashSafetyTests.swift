import Foundation
import HubCore
import HubTestSupport
@testable import Registry
import Testing

/// The daemon as its own process, killed with SIGKILL in the middle of uploads and commits,
/// again and again. After every kill the data directory must be consistent, and after every
/// restart the interrupted work must resume or be cleanly absent.
@Suite("Crash safety", .serialized)
struct CrashSafetyTests {
    /// A `hubctl serve` process on a free port.
    final class Daemon {
        let process = Process()
        let port: Int

        init(dataDirectory: URL) throws {
            process.executableURL = try HubctlBinary.url()
            process.arguments = ["serve", "--port", "0", "--data-dir", dataDirectory.path]
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            var text = "", port: Int?
            let deadline = Date().addingTimeInterval(30)
            while port == nil, Date() < deadline {
                let data = errors.fileHandleForReading.availableData
                if data.isEmpty { break }
                text += String(decoding: data, as: UTF8.self)
                if let range = text.range(of: #"on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                    port = Int(text[range].split(separator: ":").last!)
                }
            }
            guard let port else { process.terminate(); throw DaemonError.didNotStart(text) }
            self.port = port
            // Keep draining stderr so the daemon never blocks on a full pipe.
            errors.fileHandleForReading.readabilityHandler = { _ = $0.availableData }
        }

        func kill() {
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    enum DaemonError: Error { case didNotStart(String) }

    /// Everything the invariants say, checked with the daemon dead.
    func audit(_ dataDirectory: URL, round: Int) throws {
        let report = try RegistryCheck(registry: HubRegistry(dataDirectory: dataDirectory)).run()
        #expect(report.problems == [], "round \(round)")
    }

    @Test("20 SIGKILLs during uploads and commits: integrity ok, blobs match their hashes, no dangling references, uploads resume or vanish")
    func killDuringWrites() throws {
        let directory = try TemporaryDirectory()
        let dataDirectory = directory.path("hub")
        var generator = SeededGenerator(seed: 2026)
        var pushes: [(directory: URL, repository: RepositoryName)] = []
        var interrupted = 0, resumed = 0
        for round in 0 ..< 20 {
            let daemon = try Daemon(dataDirectory: dataDirectory)
            let token = try #require(AdminTokenFile.read(in: dataDirectory))
            let client = {
                var client = HubClient(endpoint: "http://127.0.0.1:\(daemon.port)", token: token)
                client.attempts = 1
                return client
            }()
            // Work left over from the previous round: its upload either resumes or is gone.
            let registryView = try HubRegistry(dataDirectory: dataDirectory)
            for upload in try registryView.store.allUploads() {
                let status = try rawRequest("GET", port: daemon.port, path: "/api/uploads/\(upload.id)", token: token)
                #expect(status.status == 200 || status.status == 404, "round \(round)")
                if status.status == 200 { resumed += 1 }
            }
            let content = try makeContent(directory, name: "round-\(round)", files: [
                "config.json": Data("{\"round\": \(round)}".utf8),
                "shard-a.bin": randomBytes(6_000_000 + Int(generator.next() % 1_000_000), seed: UInt64(round * 2 + 1)),
                "shard-b.bin": randomBytes(3_000_000, seed: UInt64(round * 2 + 2)),
            ])
            pushes.append((content, try RepositoryName("crash/round-\(round)")))
            let delay = 0.02 + Double(generator.next() % 400) / 1000
            let done = DispatchSemaphore(value: 0)
            let outcome = Outcome()
            let pending = pushes
            Thread.detachNewThread {
                // Finish earlier rounds' pushes first (resuming their uploads), then this one's.
                for push in pending {
                    do { _ = try client.pushChunked(push.directory, to: push.repository) } catch { outcome.failed = true; break }
                }
                done.signal()
            }
            Thread.sleep(forTimeInterval: delay)
            daemon.kill()
            done.wait()
            if outcome.failed { interrupted += 1 }
            try audit(dataDirectory, round: round)
        }
        // A last, uninterrupted run completes everything, and every pushed byte comes back.
        let daemon = try Daemon(dataDirectory: dataDirectory)
        defer { daemon.kill() }
        let client = HubClient(endpoint: "http://127.0.0.1:\(daemon.port)", token: try #require(AdminTokenFile.read(in: dataDirectory)))
        for push in pushes { _ = try client.pushChunked(push.directory, to: push.repository) }
        let registry = try HubRegistry(dataDirectory: dataDirectory)
        for push in pushes {
            let revision = try #require(try registry.store.resolve(push.repository, revision: "main"))
            for file in try registry.store.files(of: revision.id) {
                #expect(try Data(contentsOf: registry.blobs.fileURL(for: file.sha256)) == Data(contentsOf: push.directory.appendingPathComponent(file.path)))
            }
        }
        #expect(try registry.store.allUploads().isEmpty)
        #expect(interrupted >= 5, "only \(interrupted) of 20 kills interrupted a push; the test did not exercise crashes")
        print("crash safety: \(interrupted) of 20 kills interrupted a push; \(resumed) uploads found resumable after restart")
    }

    final class Outcome: @unchecked Sendable { var failed = false }
}

struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state >> 11
    }
}

extension HubClient {
    /// A push in small chunks, so that a kill lands inside an upload more often than between two.
    func pushChunked(_ directory: URL, to repository: RepositoryName) throws -> PushResult {
        var options = PushOptions()
        options.chunkSize = 256 << 10
        return try push(directory: directory, to: repository, options: options)
    }
}
