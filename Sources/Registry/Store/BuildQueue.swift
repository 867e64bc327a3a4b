import Builds
import Foundation

/// Where a build is in its life. Queued and running builds count against the queue's limit;
/// the other three are final until a retry queues the build again.
public enum BuildState: String, Codable, Sendable, CaseIterable {
    case queued, running, succeeded, failed, cancelled

    public var isFinal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// A variant a build registered.
public struct BuiltVariant: Codable, Sendable, Equatable {
    public let repository: String
    public let revision: String
    /// Held-out loss of the evaluation, when the suite measured it.
    public let loss: Double?

    public init(repository: String, revision: String, loss: Double?) {
        self.repository = repository
        self.revision = revision
        self.loss = loss
    }
}

/// What a build has made so far: the variants it registered and how many stages it ran or
/// found in the stage cache (a sweep shares its compressions across budgets).
public struct BuildResult: Codable, Sendable, Equatable {
    /// One stage of one cell: how long it took when it ran (a cached one took that long once).
    public struct StageTime: Codable, Sendable, Equatable {
        public let cell: String
        public let stage: String
        public let seconds: Double
        public let cached: Bool

        public init(cell: String, stage: String, seconds: Double, cached: Bool) {
            self.cell = cell
            self.stage = stage
            self.seconds = seconds
            self.cached = cached
        }
    }

    public var variants: [BuiltVariant] = []
    public var stagesRun = 0
    public var stagesReused = 0
    public var stages: [StageTime] = []

    public init() {}

    enum CodingKeys: String, CodingKey { case variants, stagesRun = "stages_run", stagesReused = "stages_reused", stages }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        variants = try c.decode([BuiltVariant].self, forKey: .variants)
        stagesRun = try c.decode(Int.self, forKey: .stagesRun)
        stagesReused = try c.decode(Int.self, forKey: .stagesReused)
        stages = try c.decodeIfPresent([StageTime].self, forKey: .stages) ?? []
    }
}

/// One submitted build as the queue keeps it (`schemas/build.schema.json` on the wire).
public struct BuildRecord: Codable, Sendable, Equatable {
    public let id: String
    public let recipe: BuildRecipe
    public let author: String
    public let state: BuildState
    public let cancelRequested: Bool
    /// How many times a worker has started it (a restart after a crash or a retry adds one).
    public let attempts: Int
    public let error: String?
    public let result: BuildResult
    public let createdAt: String
    public let startedAt: String?
    public let finishedAt: String?

    enum CodingKeys: String, CodingKey {
        case id, recipe, author, state, cancelRequested = "cancel_requested", attempts, error, result
        case createdAt = "created_at", startedAt = "started_at", finishedAt = "finished_at"
    }
}

/// The build queue, kept beside the registry's metadata (the embedded default is a table in
/// the same SQLite file, so a build and the variant it registers live in one database). Every
/// state change is one atomic step, so two workers can never claim the same build.
public protocol BuildQueue: Sendable {
    /// Queues a validated recipe, unless `limit` builds already wait or run.
    func enqueueBuild(recipe: BuildRecipe, author: String, limit: Int) throws -> BuildRecord
    func build(id: String) throws -> BuildRecord?
    /// The newest builds first, only those in `states` when given.
    func builds(states: [BuildState]?, limit: Int) throws -> [BuildRecord]
    /// Takes the oldest queued build and marks it running (one more attempt), or nil.
    func claimNextBuild() throws -> BuildRecord?
    func updateBuildResult(id: String, _ result: BuildResult) throws
    /// Ends a running build in a final state, with the error text of a failure.
    func finishBuild(id: String, state: BuildState, error: String?) throws -> BuildRecord
    /// Cancels a queued build at once; a running one is marked for its worker to stop.
    func cancelBuild(id: String) throws -> BuildRecord
    /// Queues a failed or cancelled build again (stages already finished come from the cache).
    func retryBuild(id: String, limit: Int) throws -> BuildRecord
    /// Running builds whose worker died with the daemon go back to the queue; returns their ids.
    func requeueInterruptedBuilds() throws -> [String]
}
