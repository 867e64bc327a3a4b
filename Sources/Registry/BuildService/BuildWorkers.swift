import Builds
import Foundation
import HubCore

/// The daemon's build workers: threads that take queued builds from the store, run their
/// stages through a `StageScheduler` (child processes by default) and the stage cache, and
/// commit each finished variant with its lineage and metrics. The registry's HTTP routes talk
/// to this and to the queue only; the stages are the scheduler's business.
public final class BuildWorkers: @unchecked Sendable {
    public struct Settings: Sendable {
        /// Builds run at once. One on a 2-core machine: two builds would share two cores and
        /// finish no sooner, and the readers would have none left.
        public var workers = 1
        /// Builds waiting or running before a submission is refused.
        public var queueLimit = 32
        /// How often an idle worker looks at the queue even without a wake-up (another process
        /// sharing the database may have queued something).
        public var poll: TimeInterval = 5

        public init() {}
    }

    public let registry: HubRegistry
    public let scheduler: any StageScheduler
    public let cache: any StageCache
    public let events: BuildEventHub
    public let settings: Settings
    private let lock = NSLock()
    private var running: [String: Cancellation] = [:]
    private let wakeup = NSCondition()
    private var pending = 0

    public init(registry: HubRegistry, scheduler: any StageScheduler, cache: any StageCache, events: BuildEventHub = BuildEventHub(),
                settings: Settings = Settings()) {
        self.registry = registry
        self.scheduler = scheduler
        self.cache = cache
        self.events = events
        self.settings = settings
    }

    /// Puts builds a dead daemon left running back in the queue, then starts the workers.
    /// Returns the ids it re-queued.
    @discardableResult
    public func start() throws -> [String] {
        let requeued = try registry.store.requeueInterruptedBuilds()
        // Half-made stage outputs of stages that died with the last daemon.
        (cache as? DirectoryStageCache)?.removeAbandonedWork()
        for _ in 0..<settings.workers {
            let thread = Thread { [self] in work() }
            thread.name = "build-worker"
            thread.start()
        }
        return requeued
    }

    /// Validates and queues a recipe from `author`, and wakes a worker.
    public func submit(_ recipe: BuildRecipe, author: String) throws -> BuildRecord {
        try recipe.validate(knownMethods: BuildRecipe.knownMethods)
        do { _ = try registry.modelFiles(recipe.base) } catch {
            throw BuildError.invalidField("base", "'\(recipe.base)' is not a model in this registry (\(error))")
        }
        let record = try registry.store.enqueueBuild(recipe: recipe, author: author, limit: settings.queueLimit)
        publishState(record, message: "queued")
        signal()
        return record
    }

    /// Cancels a queued build at once, or stops a running one (its child stage is terminated).
    public func cancel(id: String) throws -> BuildRecord {
        let record = try registry.store.cancelBuild(id: id)
        if record.state == .cancelled { publishState(record, message: "cancelled before it started") }
        lock.withLock { running[id] }?.cancel()
        return record
    }

    /// Queues a failed or cancelled build again; finished stages come from the cache.
    public func retry(id: String) throws -> BuildRecord {
        let record = try registry.store.retryBuild(id: id, limit: settings.queueLimit)
        publishState(record, message: "queued again")
        signal()
        return record
    }

    private func signal() {
        wakeup.lock()
        pending += 1
        wakeup.signal()
        wakeup.unlock()
    }

    private func work() {
        while true {
            let claimed: BuildRecord?
            do { claimed = try registry.store.claimNextBuild() } catch {
                claimed = nil
            }
            guard let build = claimed else {
                wakeup.lock()
                if pending == 0 { _ = wakeup.wait(until: Date().addingTimeInterval(settings.poll)) }
                pending = max(0, pending - 1)
                wakeup.unlock()
                continue
            }
            execute(build)
        }
    }

    /// Runs every cell of a build, registering each variant as it finishes.
    func execute(_ build: BuildRecord) {
        let cancellation = Cancellation()
        lock.withLock { running[build.id] = cancellation }
        defer { _ = lock.withLock { running.removeValue(forKey: build.id) } }
        if build.cancelRequested { cancellation.cancel() }
        publishState(build, message: "running (attempt \(build.attempts))")
        let cells = build.recipe.expanded()
        var result = BuildResult()
        do {
            for (index, cell) in cells.enumerated() {
                let stages = 2 + (cell.finetune == nil ? 0 : 1) + (cell.quantization == nil ? 0 : 1)
                var stageIndex = 0
                let base = try registry.modelFiles(cell.base).files
                // The runner only sequences the cell's stages here; the scheduler runs them.
                let runner = BuildRunner(cache: cache, assetCache: URL(fileURLWithPath: "/"))
                let output = try runner.build(cell, base: base) { [self] job in
                    defer { stageIndex += 1 }
                    var event = BuildEvent(build: build.id, kind: .stage)
                    (event.cell, event.cellIndex, event.cells, event.stage) = (cell.name, index, cells.count, job.spec.kind.rawValue)
                    event.fraction = (Double(index) + Double(stageIndex) / Double(stages)) / Double(cells.count)
                    if let cached = try cache.lookup(job.spec.key) {
                        let record = try StageRecord.read(from: cached)
                        result.stagesReused += 1
                        result.stages.append(.init(cell: cell.name, stage: job.spec.kind.rawValue, seconds: record.seconds, cached: true))
                        event.cached = true
                        event.message = "\(job.spec.label): from the stage cache"
                        events.publish(event)
                        return (cached, record)
                    }
                    result.stagesRun += 1
                    event.cached = false
                    event.message = "\(job.spec.label): running"
                    events.publish(event)
                    let started = Date(), done = Double(stageIndex)
                    defer { try? registry.store.updateBuildResult(id: build.id, result) }
                    let (output, record) = try scheduler.run(job, cancellation: cancellation) { [events] stageEvent in
                        var progress = BuildEvent(build: build.id, kind: .progress)
                        (progress.cell, progress.cellIndex, progress.cells, progress.stage) = (cell.name, index, cells.count, job.spec.kind.rawValue)
                        progress.message = stageEvent.message.isEmpty ? nil : stageEvent.message
                        if let fraction = stageEvent.fraction, fraction > 0 {
                            progress.stageFraction = fraction
                            progress.etaSeconds = Date().timeIntervalSince(started) * (1 - fraction) / fraction
                            progress.fraction = (Double(index) + (done + fraction) / Double(stages)) / Double(cells.count)
                        }
                        events.publish(progress)
                    }
                    result.stages.append(.init(cell: cell.name, stage: job.spec.kind.rawValue, seconds: record.seconds, cached: false))
                    return (output, record)
                }
                try cancellation.check("registering \(cell.name)")
                let revision = try registry.registerBuild(output, author: build.author)
                let variant = BuiltVariant(repository: cell.name, revision: revision.id, loss: output.metrics.loss?.crossEntropy)
                result.variants.append(variant)
                try registry.store.updateBuildResult(id: build.id, result)
                var event = BuildEvent(build: build.id, kind: .variant)
                (event.cell, event.cellIndex, event.cells, event.variant) = (cell.name, index, cells.count, variant)
                event.fraction = Double(index + 1) / Double(cells.count)
                event.message = "registered \(cell.name) at \(revision.id.prefix(10))"
                events.publish(event)
            }
            try finish(build.id, .succeeded, error: nil, result: result)
        } catch BuildError.cancelled(let stage) {
            try? finish(build.id, .cancelled, error: BuildError.cancelled(at: stage).description, result: result)
        } catch {
            try? finish(build.id, cancellation.isCancelled ? .cancelled : .failed, error: "\(error)", result: result)
        }
    }

    private func finish(_ id: String, _ state: BuildState, error: String?, result: BuildResult) throws {
        try registry.store.updateBuildResult(id: id, result)
        let record = try registry.store.finishBuild(id: id, state: state, error: error)
        publishState(record, message: error ?? state.rawValue)
    }

    private func publishState(_ record: BuildRecord, message: String) {
        var event = BuildEvent(build: record.id, kind: .state)
        event.state = record.state
        event.error = record.error
        event.message = message
        if record.state == .succeeded { event.fraction = 1 }
        events.publish(event)
    }
}
