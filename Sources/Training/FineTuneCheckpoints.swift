import Checkpoint
import Foundation
import HubCore

/// Where a fine-tuning run leaves what it needs to continue: every `every` steps (and when it
/// is asked to stop) the trained values, the optimizer's moments and step, the stream cursor
/// and the loss curve so far.
///
/// Layout: `<directory>/step-NNNNNN/{tensors.safetensors, state.json}` and a `latest` file
/// naming the newest complete one. A step directory is written under a temporary name and
/// renamed whole, and only then does `latest` move to it (atomically), so a run killed at any
/// moment leaves the previous checkpoint intact. The run's identity (parent, corpus, every
/// setting) is stored with each checkpoint; a resume from another run's directory is refused.
public struct FineTuneCheckpoints: Sendable {
    public let directory: URL
    public let every: Int
    /// What must match for a checkpoint to belong to this run, as text by key.
    public let identity: [String: String]

    public init(directory: URL, every: Int, identity: [String: String]) throws {
        guard every >= 1 else { throw FineTuneError.invalid("checkpoints need an interval of at least one step (got \(every))") }
        self.directory = directory
        self.every = every
        self.identity = identity
    }

    /// What a checkpoint holds.
    public struct State: Sendable {
        public var values: [String: [Float]]
        public var shapes: [String: [Int]]
        public var first: [String: [Float]]
        public var second: [String: [Float]]
        public var optimizerStep: Int
        public var cursor: Int
        public var curve: [FineTuner.Step]
        public var wallSeconds: Double
    }

    struct Manifest: Codable {
        var identity: [String: String]
        var optimizerStep: Int
        var cursor: Int
        var wallSeconds: Double
        var curve: [FineTuner.Step]

        enum CodingKeys: String, CodingKey {
            case identity, optimizerStep = "optimizer_step", cursor, wallSeconds = "wall_seconds", curve
        }
    }

    var latestFile: URL { directory.appendingPathComponent("latest") }

    public func save(_ state: State) throws {
        let manager = FileManager.default
        try manager.createDirectory(at: directory, withIntermediateDirectories: true)
        let name = String(format: "step-%06d", state.curve.count)
        let destination = directory.appendingPathComponent(name)
        let staging = AtomicFile.temporaryURL(besides: destination)
        try manager.createDirectory(at: staging, withIntermediateDirectories: true)
        do {
            var tensors: [PendingTensor] = []
            for key in state.values.keys.sorted() {
                let shape = state.shapes[key] ?? [state.values[key]!.count]
                tensors.append(.float32("value/" + key, shape: shape, values: state.values[key]!))
                if let m = state.first[key], let v = state.second[key] {
                    tensors.append(.float32("adam.m/" + key, shape: shape, values: m))
                    tensors.append(.float32("adam.v/" + key, shape: shape, values: v))
                }
            }
            try SafetensorsWriter.write(tensors, to: staging.appendingPathComponent("tensors.safetensors"))
            let manifest = Manifest(identity: identity, optimizerStep: state.optimizerStep, cursor: state.cursor,
                                    wallSeconds: state.wallSeconds, curve: state.curve)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            try AtomicFile.write(try encoder.encode(manifest), to: staging.appendingPathComponent("state.json"))
            if manager.fileExists(atPath: destination.path) { try manager.removeItem(at: destination) }
            try AtomicFile.commit(staging, to: destination)
        } catch {
            try? manager.removeItem(at: staging)
            throw error
        }
        try AtomicFile.write(Data(name.utf8), to: latestFile)
        // Older checkpoints and leftovers of a write that was killed are no longer needed.
        for entry in try manager.contentsOfDirectory(atPath: directory.path) where entry != name && entry != "latest" {
            try? manager.removeItem(at: directory.appendingPathComponent(entry))
        }
    }

    /// The newest complete checkpoint, or nil when none was written yet. Throws if it
    /// belongs to another run.
    public func latest() throws -> State? {
        guard let data = FileManager.default.contents(atPath: latestFile.path) else { return nil }
        let step = directory.appendingPathComponent(String(decoding: data, as: UTF8.self))
        let manifestData = try Data(contentsOf: step.appendingPathComponent("state.json"))
        let manifest = try JSONDecoder().decode(Manifest.self, from: manifestData)
        for key in Set(identity.keys).union(manifest.identity.keys).sorted() where identity[key] != manifest.identity[key] {
            throw FineTuneError.foreignCheckpoint(directory: directory.path, field: key,
                                                  saved: manifest.identity[key] ?? "(none)", requested: identity[key] ?? "(none)")
        }
        let file = try SafetensorsFile(path: step.appendingPathComponent("tensors.safetensors").path)
        var state = State(values: [:], shapes: [:], first: [:], second: [:], optimizerStep: manifest.optimizerStep,
                          cursor: manifest.cursor, curve: manifest.curve, wallSeconds: manifest.wallSeconds)
        for entry in file.entries {
            let parts = entry.name.split(separator: "/", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            let values = try file.floats(entry.name)
            switch parts[0] {
            case "value": state.values[parts[1]] = values; state.shapes[parts[1]] = entry.shape
            case "adam.m": state.first[parts[1]] = values
            case "adam.v": state.second[parts[1]] = values
            default: continue
            }
        }
        return state
    }

    /// Removes the directory (after the run's output is in place).
    public func discard() throws {
        if FileManager.default.fileExists(atPath: directory.path) { try FileManager.default.removeItem(at: directory) }
    }
}
