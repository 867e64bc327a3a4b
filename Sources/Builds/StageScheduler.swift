import Foundation
import HubCore

/// What a running stage says about itself: a line for the log, and how far along it is where
/// it knows (a fine-tune counts its steps; compression and evaluation do not know their end).
public struct StageEvent: Codable, Sendable, Equatable {
    public var message: String
    /// 0…1 of this stage, when known.
    public var fraction: Double?

    public init(message: String, fraction: Double? = nil) {
        self.message = message
        self.fraction = fraction
    }
}

/// Set once to ask a build to stop. Whatever runs a stage registers how to stop it (a child
/// process to terminate); a build checks it between stages.
public final class Cancellation: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false
    private var handlers: [UUID: @Sendable () -> Void] = [:]

    public init() {}

    public var isCancelled: Bool { lock.withLock { cancelled } }

    public func cancel() {
        let toRun: [@Sendable () -> Void] = lock.withLock {
            guard !cancelled else { return [] }
            cancelled = true
            defer { handlers.removeAll() }
            return Array(handlers.values)
        }
        for handler in toRun { handler() }
    }

    /// Runs `body` with `onCancel` armed: called at once if already cancelled, or when
    /// `cancel()` comes while `body` runs.
    public func whileArmed<T>(onCancel: @escaping @Sendable () -> Void, _ body: () throws -> T) rethrows -> T {
        let id = UUID()
        let already: Bool = lock.withLock {
            if cancelled { return true }
            handlers[id] = onCancel
            return false
        }
        if already { onCancel() }
        defer { _ = lock.withLock { handlers.removeValue(forKey: id) } }
        return try body()
    }

    public func check(_ where: String) throws {
        if isCancelled { throw BuildError.cancelled(at: `where`) }
    }
}

/// Runs stage jobs: the scheduler seam. A job is files in, files out (`StageJob`), and its
/// output is found in the shared stage cache by its key afterwards, so where it runs is the
/// scheduler's business alone: in this process, in a child process (the daemon's default, so
/// that a crash in a stage cannot take the daemon down), or, later, as a cluster job that runs
/// `hubctl stage run <job.json>` on another machine that shares the cache.
public protocol StageScheduler: Sendable {
    /// Runs `job` to completion (or until cancelled) and returns its published output.
    func run(_ job: StageJob, cancellation: Cancellation, events: @escaping @Sendable (StageEvent) -> Void) throws -> (URL, StageRecord)
}

/// Stages run on the calling thread. Cancellation takes effect between stages only.
public struct InProcessStages: StageScheduler {
    public let cache: any StageCache
    public let assetCache: URL

    public init(cache: any StageCache, assetCache: URL) {
        self.cache = cache
        self.assetCache = assetCache
    }

    public func run(_ job: StageJob, cancellation: Cancellation, events: @escaping @Sendable (StageEvent) -> Void) throws -> (URL, StageRecord) {
        try cancellation.check(job.spec.label)
        return try BuildRunner(cache: cache, assetCache: assetCache, progress: events).run(job)
    }
}

/// Each stage in a child `hubctl stage run --events`, whose standard error carries one JSON
/// `StageEvent` per line. The child sees the same stage cache (its data directory) and asset
/// cache; its output is read back from the cache by key. Cancelling terminates the child; a
/// child that dies leaves no cache entry (outputs are published by rename), so the stage is
/// simply run again next time.
public struct ChildProcessStages: StageScheduler {
    public let executable: URL
    public let cache: DirectoryStageCache
    /// Passed to the child as `--data-dir`: where its stage cache lives.
    public let dataDirectory: URL
    /// The BLAS threads of compress and finetune stages (nil: the child's default, every core).
    public let threads: Int?
    /// The BLAS threads of evaluate stages. Every core by default: the latency an evaluation
    /// records is compared with others measured at the same thread count (pull's machine
    /// profile), which should be how the variant will be run, not how the build was throttled.
    public let evaluationThreads: Int?
    public let environment: [String: String]

    public init(executable: URL, cache: DirectoryStageCache, dataDirectory: URL, threads: Int?, evaluationThreads: Int? = nil,
                environment: [String: String] = [:]) {
        self.executable = executable
        self.cache = cache
        self.dataDirectory = dataDirectory
        self.threads = threads
        self.evaluationThreads = evaluationThreads
        self.environment = environment
    }

    /// The running hubctl itself, for a process that wants its stages run by its own binary.
    public static var currentExecutable: URL { URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath() }

    public func run(_ job: StageJob, cancellation: Cancellation, events: @escaping @Sendable (StageEvent) -> Void) throws -> (URL, StageRecord) {
        try cancellation.check(job.spec.label)
        if let cached = try cache.lookup(job.spec.key) {
            events(StageEvent(message: "\(job.spec.label): cached", fraction: 1))
            return (cached, try StageRecord.read(from: cached))
        }
        let file = cache.root.appendingPathComponent(".work/\(job.spec.key.hex)-\(getpid())-\(UUID().uuidString.prefix(8)).job.json")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(try encoder.encode(job), to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let process = Process()
        process.executableURL = executable
        process.arguments = ["stage", "run", file.path, "--events", "--parent-pid", "\(getpid())", "--data-dir", dataDirectory.path]
            + ((job.spec.kind == .evaluate ? evaluationThreads : threads).map { ["--threads", "\($0)"] } ?? [])
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        var tail: [String] = []
        try cancellation.whileArmed(onCancel: { if process.isRunning { process.terminate() } }) {
            try process.run()
            // One event per line until the child closes its end.
            var pending = Data()
            let reader = errors.fileHandleForReading
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    if let event = try? JSONDecoder().decode(StageEvent.self, from: Data(line.utf8)) {
                        events(event)
                    } else if !line.isEmpty {
                        tail = Array((tail + [line]).suffix(20))
                        events(StageEvent(message: line))
                    }
                }
            }
            process.waitUntilExit()
        }
        try cancellation.check(job.spec.label)
        guard process.terminationStatus == 0, process.terminationReason == .exit, let output = try cache.lookup(job.spec.key) else {
            let how = process.terminationReason == .uncaughtSignal ? "was killed by signal \(process.terminationStatus)"
                                                                  : "exited with status \(process.terminationStatus)"
            throw BuildError.stageFailed(stage: job.spec.label, reason: "hubctl stage run \(how)"
                                         + (tail.isEmpty ? "" : ": " + tail.suffix(3).joined(separator: " / ")))
        }
        return (output, try StageRecord.read(from: output))
    }
}

extension StageRecord {
    /// The record a published stage keeps in its `stage.json`.
    public static func read(from output: URL) throws -> StageRecord {
        try JSONDecoder().decode(StageRecord.self, from: Data(contentsOf: output.appendingPathComponent("stage.json")))
    }
}
