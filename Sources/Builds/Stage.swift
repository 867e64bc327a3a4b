import Foundation
import HubCore

/// One step of a build as a pure function from files to files: its kind, the sha256 of the
/// model it reads, and its settings. Its key hashes exactly those plus the code version, so
/// an identical stage (the same compression under three fine-tuning budgets) runs once and
/// is found in the cache after that; and it is all a separate process (or a cluster job)
/// needs to run it: `hubctl stage run <stage.json>`.
public struct StageSpec: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case compress, finetune, quantize, evaluate }

    public let kind: Kind
    /// The sha256 of the input model's model.safetensors.
    public let inputSHA256: SHA256Digest
    /// The stage's own settings (method and ratio, or suite), as canonical JSON.
    public let settings: JSONValue
    public let codeVersion: String

    public init(kind: Kind, inputSHA256: SHA256Digest, settings: JSONValue, codeVersion: String = "hubctl \(HubVersion.current)") {
        self.kind = kind
        self.inputSHA256 = inputSHA256
        self.settings = settings
        self.codeVersion = codeVersion
    }

    enum CodingKeys: String, CodingKey { case kind, inputSHA256 = "input_sha256", settings, codeVersion = "code_version" }

    /// The sha256 of the spec's canonical JSON (keys sorted): the stage's address in a cache.
    public var key: SHA256Digest {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return SHA256Digest.of((try? encoder.encode(self)) ?? Data())
    }

    public var label: String { "\(kind.rawValue) \(key.hex.prefix(12))" }
}

/// What a finished stage leaves beside its output files, as `stage.json`.
public struct StageRecord: Codable, Sendable, Equatable {
    public let spec: StageSpec
    public let key: SHA256Digest
    public let seconds: Double
    public let createdAt: String

    enum CodingKeys: String, CodingKey { case spec, key, seconds, createdAt = "created_at" }
}

/// Where finished stages are kept, by key. A local directory is the default; an object store
/// would implement the same three calls.
public protocol StageCache: Sendable {
    /// The output directory of a finished stage, or nil.
    func lookup(_ key: SHA256Digest) throws -> URL?
    /// A fresh directory to build a stage's output in, on the cache's file system.
    func workDirectory(for key: SHA256Digest) throws -> URL
    /// Publishes a finished work directory under `key`, atomically; returns where it now is.
    func publish(_ work: URL, record: StageRecord) throws -> URL
    /// Where a long stage keeps its checkpoints, the same for every attempt at `key`, so that
    /// an attempt after a crash resumes where the last one stopped.
    func checkpointDirectory(for key: SHA256Digest) -> URL
}

/// Stage outputs in `<root>/<key>/`, each with its `stage.json`. A work directory becomes
/// visible only by a rename once complete, so a stage killed midway leaves no entry and is
/// simply run again.
public struct DirectoryStageCache: StageCache {
    public let root: URL

    public init(root: URL) throws {
        self.root = root
        try FileManager.default.createDirectory(at: root.appendingPathComponent(".work"), withIntermediateDirectories: true)
    }

    public func lookup(_ key: SHA256Digest) throws -> URL? {
        let directory = root.appendingPathComponent(key.hex, isDirectory: true)
        return FileManager.default.fileExists(atPath: directory.appendingPathComponent("stage.json").path) ? directory : nil
    }

    /// `<key>-<pid>-<random>`: the pid says whose it is, so that what a dead process left can
    /// be told from what a live one is writing.
    public func workDirectory(for key: SHA256Digest) throws -> URL {
        let work = root.appendingPathComponent(".work/\(key.hex)-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        return work
    }

    /// Removes the work directories of processes that are gone (killed mid-stage); returns
    /// how many. Checkpoints stay: they are what the next attempt resumes from.
    @discardableResult
    public func removeAbandonedWork() -> Int {
        let work = root.appendingPathComponent(".work")
        var removed = 0
        for name in (try? FileManager.default.contentsOfDirectory(atPath: work.path)) ?? [] {
            let parts = name.split(separator: "-")
            guard parts.count == 3, parts[0].count == 64, let pid = pid_t(parts[1]), !Self.isAlive(pid) else { continue }
            if (try? FileManager.default.removeItem(at: work.appendingPathComponent(name))) != nil { removed += 1 }
        }
        return removed
    }

    /// Whether a process runs (a zombie, dead but not yet reaped, does not count).
    static func isAlive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return !stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    public func checkpointDirectory(for key: SHA256Digest) -> URL {
        root.appendingPathComponent(".work/\(key.hex).checkpoint", isDirectory: true)
    }

    public func publish(_ work: URL, record: StageRecord) throws -> URL {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try encoder.encode(record).write(to: work.appendingPathComponent("stage.json"))
        let destination = root.appendingPathComponent(record.key.hex, isDirectory: true)
        if FileManager.default.fileExists(atPath: destination.path) {
            // Another run finished the same stage first: its output is as good as ours.
            try? FileManager.default.removeItem(at: work)
            return destination
        }
        try AtomicFile.commit(work, to: destination)
        return destination
    }
}
