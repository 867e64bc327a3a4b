import Builds
import Foundation
import HubCore
import HubTestSupport
@testable import Registry
import Testing

@Suite("Build queue in SQLite: states, limits, cancel, retry, restart")
struct BuildQueueTests {
    static func recipe(_ name: String = "team/v") -> BuildRecipe {
        BuildRecipe(base: "a/b", name: name, compression: .init(method: "weight-prune", ratio: 0.1),
                    evaluation: .init(suite: "smoke", latency: false))
    }

    @Test("a build goes queued → running → succeeded; claims are oldest first and never twice; the record matches its schema")
    func lifecycle() throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteMetadataStore(path: directory.path("r.sqlite").path)
        let first = try store.enqueueBuild(recipe: Self.recipe("team/one"), author: "ana", limit: 8)
        let second = try store.enqueueBuild(recipe: Self.recipe("team/two"), author: "bo", limit: 8)
        #expect(first.state == .queued && first.attempts == 0 && first.recipe == Self.recipe("team/one"))
        // Two threads claiming at once get different builds, then nothing.
        let claims = ClaimLog()
        DispatchQueue.concurrentPerform(iterations: 4) { _ in claims.add(try? store.claimNextBuild()) }
        #expect(claims.ids.sorted() == [first.id, second.id].sorted())
        let running = try #require(try store.build(id: first.id))
        #expect(running.state == .running && running.attempts == 1 && running.startedAt != nil)
        var result = BuildResult()
        result.variants = [BuiltVariant(repository: "team/one", revision: String(repeating: "a", count: 40), loss: 3.5)]
        result.stagesRun = 2
        try store.updateBuildResult(id: first.id, result)
        let done = try store.finishBuild(id: first.id, state: .succeeded, error: nil)
        #expect(done.state == .succeeded && done.result == result && done.finishedAt != nil)
        #expect { try store.finishBuild(id: first.id, state: .failed, error: "late") } throws: { ($0 as? RegistryError) == .buildState(id: first.id, state: "succeeded", action: "a running build can finish") }
        #expect(try store.builds(states: [.running], limit: 10).map(\.id) == [second.id])
        #expect(try store.builds(states: nil, limit: 10).map(\.id) == [second.id, first.id])

        let validator = try JSONSchemaValidator(schemaAt: Assets.repositoryRoot.appendingPathComponent("schemas/build.schema.json"))
        for record in [done, try store.build(id: second.id)!] {
            #expect(validator.violations(of: try JSONSerialization.jsonObject(with: JSONEncoder().encode(record))) == [])
        }
    }

    @Test("a full queue refuses with a message that says so; cancel and retry follow the states; a restart re-queues running builds")
    func limitsCancelRetryRestart() throws {
        let directory = try TemporaryDirectory()
        let store = try SQLiteMetadataStore(path: directory.path("r.sqlite").path)
        let a = try store.enqueueBuild(recipe: Self.recipe(), author: "ana", limit: 2)
        let b = try store.enqueueBuild(recipe: Self.recipe(), author: "ana", limit: 2)
        #expect { try store.enqueueBuild(recipe: Self.recipe(), author: "ana", limit: 2) } throws: { error in
            (error as? RegistryError) == .queueFull(limit: 2) && "\(error)".contains("queue is full")
        }
        #expect(try store.builds(states: nil, limit: 10).count == 2)

        // Cancelling a queued build ends it at once; a running one is only marked.
        #expect(try store.cancelBuild(id: b.id).state == .cancelled)
        #expect(try store.claimNextBuild()?.id == a.id)
        let marked = try store.cancelBuild(id: a.id)
        #expect(marked.state == .running && marked.cancelRequested)
        #expect { try store.cancelBuild(id: b.id) } throws: { ($0 as? RegistryError).map { "\($0)".contains("is cancelled") } ?? false }
        #expect { try store.retryBuild(id: a.id, limit: 2) } throws: { ($0 as? RegistryError).map { "\($0)".contains("is running") } ?? false }

        // A retry queues a cancelled build again, with its error and marks cleared.
        let again = try store.retryBuild(id: b.id, limit: 2)
        #expect(again.state == .queued && !again.cancelRequested && again.error == nil)
        #expect(try store.claimNextBuild()?.id == b.id)
        #expect(try store.build(id: b.id)?.attempts == 1)

        // The daemon dies: on restart the running build goes back to the queue, and the one
        // whose cancellation was asked for ends cancelled.
        let reopened = try SQLiteMetadataStore(path: directory.path("r.sqlite").path)
        #expect(try reopened.requeueInterruptedBuilds().sorted() == [a.id, b.id].sorted())
        #expect(try reopened.build(id: a.id)?.state == .cancelled)
        #expect(try reopened.build(id: b.id)?.state == .queued)
        #expect(try reopened.claimNextBuild().map { ($0.id, $0.attempts) }! == (b.id, 2))
        #expect { try reopened.cancelBuild(id: "bnope") } throws: { ($0 as? RegistryError) == .buildNotFound("bnope") }
    }

    @Test("an event stream replays what a late watcher missed and ends with the build's final state")
    func eventReplay() async throws {
        let hub = BuildEventHub()
        let directory = try TemporaryDirectory()
        let store = try SQLiteMetadataStore(path: directory.path("r.sqlite").path)
        let queued = try store.enqueueBuild(recipe: Self.recipe(), author: "ana", limit: 4)
        var stage = BuildEvent(build: queued.id, kind: .stage)
        stage.stage = "compress"
        hub.publish(stage)
        for fraction in [0.25, 0.5] {
            var progress = BuildEvent(build: queued.id, kind: .progress)
            progress.stageFraction = fraction
            hub.publish(progress)
        }
        let stream = hub.subscribe(try store.claimNextBuild()!)
        var end = BuildEvent(build: queued.id, kind: .state)
        end.state = .succeeded
        let finished = try store.finishBuild(id: queued.id, state: .succeeded, error: nil)
        hub.publish(end)
        var seen: [BuildEvent] = []
        for await event in stream { seen.append(event) }
        // Bare progress events collapse to the latest one in the history.
        #expect(seen.map(\.kind) == [.stage, .progress, .state])
        #expect(seen[1].stageFraction == 0.5 && seen.last?.state == .succeeded)
        // After the end, a watcher gets the story and the queue's final word, then the stream ends.
        var late: [BuildEvent] = []
        for await event in hub.subscribe(finished) { late.append(event) }
        #expect(late.map(\.kind) == [.stage, .progress, .state] && late.last?.state == .succeeded)
    }
}

final class ClaimLog: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var ids: [String] = []
    func add(_ record: BuildRecord?) { if let record { lock.withLock { ids.append(record.id) } } }
}
