import Foundation

/// One thing that happened to a build, as streamed to clients (`GET /api/builds/{id}/events`,
/// server-sent events whose `event:` is the kind and whose `data:` is this as JSON).
public struct BuildEvent: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// The build's state changed; the last event of a build is a final state.
        case state
        /// A stage started (or was found in the cache).
        case stage
        /// How far the build is: fractions and an ETA, with a log line when there is one.
        case progress
        /// A variant was registered.
        case variant
    }

    public var build: String
    public var kind: Kind
    public var time: String
    public var state: BuildState?
    /// The variant being built, and its place among the build's cells (a sweep has several).
    public var cell: String?
    public var cellIndex: Int?
    public var cells: Int?
    /// compress, finetune or evaluate.
    public var stage: String?
    public var cached: Bool?
    /// 0…1 of the current stage, when the stage knows.
    public var stageFraction: Double?
    /// 0…1 of the whole build, counting each cell's stages as equal parts.
    public var fraction: Double?
    /// Seconds left in the current stage, from its rate so far.
    public var etaSeconds: Double?
    public var message: String?
    public var variant: BuiltVariant?
    public var error: String?

    public init(build: String, kind: Kind) {
        self.build = build
        self.kind = kind
        time = ISO8601DateFormatter().string(from: Date())
    }

    enum CodingKeys: String, CodingKey {
        case build, kind, time, state, cell, cellIndex = "cell_index", cells, stage, cached, stageFraction = "stage_fraction"
        case fraction, etaSeconds = "eta_seconds", message, variant, error
    }
}

/// Fans a build's events out to every client watching it. A client that connects late first
/// gets what it missed (the last `history` events of that build); a final state event ends
/// every stream of that build. Events live in memory only: after a restart a watcher gets the
/// build's state from the queue and the events from then on.
public final class BuildEventHub: @unchecked Sendable {
    private let lock = NSLock()
    private var histories: [String: [BuildEvent]] = [:]
    private var watchers: [String: [UUID: AsyncStream<BuildEvent>.Continuation]] = [:]
    private let history: Int

    public init(history: Int = 500) {
        self.history = history
    }

    public func publish(_ event: BuildEvent) {
        let targets: [AsyncStream<BuildEvent>.Continuation] = lock.withLock {
            var kept = histories[event.build, default: []]
            // Progress without a log line only moves the bar: keep the latest one, not all.
            if event.kind == .progress, event.message == nil, kept.last?.kind == .progress, kept.last?.message == nil { kept.removeLast() }
            kept.append(event)
            histories[event.build] = Array(kept.suffix(history))
            return Array(watchers[event.build, default: [:]].values)
        }
        for watcher in targets { watcher.yield(event) }
        if event.kind == .state, event.state?.isFinal == true {
            let ending = lock.withLock { watchers.removeValue(forKey: event.build) ?? [:] }
            for watcher in ending.values { watcher.finish() }
        }
    }

    /// The build's past events, then its live ones until it ends. `current` is the build's
    /// state in the queue: a build already final (or one this daemon has no events of) is
    /// answered with that state alone.
    public func subscribe(_ current: BuildRecord) -> AsyncStream<BuildEvent> {
        AsyncStream { continuation in
            let id = UUID()
            let (past, live): ([BuildEvent], Bool) = lock.withLock {
                let past = histories[current.id] ?? []
                let ended = past.last.map { $0.kind == .state && $0.state?.isFinal == true } ?? false
                if current.state.isFinal || ended { return (past, false) }
                watchers[current.id, default: [:]][id] = continuation
                return (past, true)
            }
            var snapshot = BuildEvent(build: current.id, kind: .state)
            snapshot.state = current.state
            snapshot.error = current.error
            snapshot.message = "\(current.state.rawValue) (attempt \(current.attempts))"
            if live {
                // What it missed, or where it stands when this daemon has seen nothing yet.
                for event in past.isEmpty ? [snapshot] : past { continuation.yield(event) }
            } else {
                // Its story, then the queue's word on how it ended.
                for event in past where !(event.kind == .state && event.state?.isFinal == true) { continuation.yield(event) }
                continuation.yield(snapshot)
                continuation.finish()
                return
            }
            continuation.onTermination = { [weak self] _ in
                guard let self else { return }
                _ = self.lock.withLock { self.watchers[current.id]?.removeValue(forKey: id) }
            }
        }
    }
}
