import Builds
import Foundation
import HubCore
import HubTestSupport
@testable import Registry
import Testing

/// Builds submitted to a real `hubctl serve` over HTTP, run by its worker in child stage
/// processes on the real model, watched through server-sent events.
@Suite("Builds run by the daemon", .serialized)
struct BuildDaemonTests {
    typealias Daemon = CrashSafetyTests.Daemon

    /// A data directory holding the real model as `smollm2/base`.
    static func registryWithBase(_ directory: TemporaryDirectory) throws -> URL {
        let dataDir = directory.path("hub")
        let imported = try HubctlBinary.run(["import", try Assets.modelGGUF().path, "smollm2/base", "--data-dir", dataDir.path])
        #expect(imported.status == 0, "\(imported.stderr)")
        return dataDir
    }

    static func recipe(_ json: String) -> Data {
        Data(("{\"schema_version\": 1, \"base\": \"smollm2/base\", \"evaluation\": {\"suite\": \"smoke\", \"latency\": false, \"tasks\": [\"general_knowledge\"]}, " + json + "}").utf8)
    }

    static func client(_ daemon: Daemon, _ dataDir: URL) -> HubClient {
        HubClient(endpoint: "http://127.0.0.1:\(daemon.port)", token: AdminTokenFile.read(in: dataDir))
    }

    static func revisionCount(_ registry: HubRegistry, _ repository: String) throws -> Int {
        let name = try RepositoryName(repository)
        return try (registry.store as! SQLiteMetadataStore).database.query(
            "SELECT count(*) AS n FROM revisions r JOIN repositories p ON p.id = r.repository_id WHERE p.namespace = ? AND p.name = ?",
            [.text(name.namespace), .text(name.name)]).first?.int("n") ?? -1
    }

    @Test("submit over HTTP, watch its events, and the variant appears with lineage and metrics; bad submissions change nothing")
    func submitAndWatch() throws {
        let directory = try TemporaryDirectory()
        let dataDir = try Self.registryWithBase(directory)
        let daemon = try Daemon(dataDirectory: dataDir)
        defer { daemon.kill() }
        let client = Self.client(daemon, dataDir)

        // Refused at submit time, naming the field; a read token may not submit at all.
        for (json, field) in [(#""name": "team/bad", "compression": {"method": "weight-prune", "ratio": 1.5}"#, "compression.ratio"),
                              (#""name": "team/bad", "compression": {"method": "shrink", "ratio": 0.1}"#, "compression.method"),
                              (#""name": "team/bad", "compression": {"method": "weight-prune", "ratio": 0.1}, "finetune": {"tokens": 10, "distill": false}"#, "finetune.tokens")] {
            #expect { try client.submitBuild(Self.recipe(json)) } throws: { error in
                guard case HubClientError.server(_, 400, "InvalidRecipe", let message) = error else { return false }
                return message.contains(field)
            }
        }
        let unknownBase = Data(#"{"schema_version": 1, "base": "nobody/nothing", "name": "team/bad", "compression": {"method": "weight-prune", "ratio": 0.1}, "evaluation": {"suite": "smoke", "latency": false}}"#.utf8)
        #expect { try client.submitBuild(unknownBase) } throws: { error in
            guard case HubClientError.server(_, 400, "InvalidRecipe", let message) = error else { return false }
            return message.contains("base") && message.contains("nobody/nothing")
        }
        let secret = TokenSecret.generate()
        _ = try HubRegistry(dataDirectory: dataDir).store.createToken(secretDigest: TokenSecret.digest(secret), user: "reader", label: "r", scope: .read)
        let readOnly = HubClient(endpoint: client.endpoint, token: secret)
        #expect { try readOnly.submitBuild(Self.recipe(#""name": "team/w10", "compression": {"method": "weight-prune", "ratio": 0.1}"#)) } throws: { error in
            guard case HubClientError.server(_, let status, _, _) = error else { return false }
            return status == 403 || status == 401
        }
        #expect(try client.builds().isEmpty)

        // A real build: compress, a two-step fine-tune, evaluate, register.
        let submitted = try client.submitBuild(Self.recipe(#""name": "team/w10", "compression": {"method": "weight-prune", "ratio": 0.1}, "finetune": {"tokens": 2048, "distill": false}"#))
        #expect(submitted.state == .queued && submitted.author == "admin")
        let events = EventLog()
        let last = try client.watchBuild(submitted.id) { events.add($0); return true }
        #expect(last?.state == .succeeded, "\(events.all.map { $0.message ?? "" })")
        let kinds = events.all.map(\.kind)
        #expect(kinds.first == .state && kinds.last == .state && kinds.contains(.variant))
        #expect(events.all.filter { $0.kind == .stage }.compactMap(\.stage) == ["compress", "finetune", "evaluate"])
        // The fine-tune says how far it is, with an ETA; the whole build's fraction only grows.
        let tuning = events.all.filter { $0.kind == .progress && $0.stage == "finetune" && $0.stageFraction != nil }
        #expect(tuning.last?.stageFraction == 1 && tuning.allSatisfy { $0.etaSeconds != nil })
        let fractions = events.all.compactMap(\.fraction)
        #expect(fractions == fractions.sorted() && fractions.last == 1)

        let build = try client.build(submitted.id)
        #expect(build.state == .succeeded && build.attempts == 1 && build.result.stagesRun == 3 && build.result.stagesReused == 0)
        #expect(build.result.variants.map(\.repository) == ["team/w10"])
        let registry = try HubRegistry(dataDirectory: dataDir)
        let chain = try registry.lineage(of: RepositoryName("team/w10"))
        #expect(chain.map(\.repository) == ["team/w10", "team/w10-compressed", "smollm2/base"])
        let card = try registry.card(RepositoryName("team/w10"))
        #expect(card.revision == build.result.variants[0].revision && card.metrics.count == 1 && card.metrics[0].crossEntropy != nil)
        // The variant carries its build: every stage's record, keyed by its inputs.
        let provenanceFile = try #require(card.files.first { $0.path == "build.json" })
        let provenance = try JSONDecoder().decode(BuildProvenance.self, from: Data(contentsOf: registry.blobs.fileURL(for: provenanceFile.sha256)))
        #expect(provenance.base == "smollm2/base" && provenance.stages.map(\.spec.kind) == [.compress, .finetune, .evaluate])
        #expect(provenance.stages.allSatisfy { $0.key == $0.spec.key && $0.spec.codeVersion.hasPrefix("hubctl ") })

        // hubctl build watch on a finished build: its story, exit status 0; build list shows it.
        let watched = try HubctlBinary.run(["build", "watch", submitted.id, "--endpoint", client.endpoint, "--data-dir", dataDir.path])
        #expect(watched.status == 0 && watched.stdout.contains("team/w10 at") && watched.stderr.contains("succeeded"), "\(watched.stderr)")
        let listed = try HubctlBinary.run(["build", "list", "--json", "--endpoint", client.endpoint, "--data-dir", dataDir.path])
        #expect(listed.status == 0 && listed.stdout.contains(submitted.id))

        // A sweep of two methods × two ratios as one build: the weight-prune r = 0.1
        // compression comes from the cache; submitted again, every stage does.
        let sweep = Self.recipe(#""name": "team/s", "sweep": {"methods": ["weight-prune", "depth-prune-influence"], "ratios": [0.1, 0.2]}"#)
        let first = try client.submitBuild(sweep)
        let sweepEvents = EventLog()
        #expect(try client.watchBuild(first.id) { sweepEvents.add($0); return true }?.state == .succeeded)
        let swept = try client.build(first.id)
        #expect(swept.result.variants.map(\.repository)
                == ["team/s-weight-prune-10", "team/s-weight-prune-20", "team/s-depth-prune-influence-10", "team/s-depth-prune-influence-20"])
        #expect(swept.result.stagesReused == 1 && swept.result.stagesRun == 7, "\(swept.result)")
        #expect(sweepEvents.all.filter { $0.kind == .variant }.map(\.cellIndex) == [0, 1, 2, 3])
        let again = try client.submitBuild(sweep)
        #expect(try client.watchBuild(again.id) { _ in true }?.state == .succeeded)
        let repeated = try client.build(again.id)
        #expect(repeated.result.stagesReused == 8 && repeated.result.stagesRun == 0)
        #expect(repeated.result.variants.map(\.revision) == swept.result.variants.map(\.revision))
        for variant in swept.result.variants { #expect(try Self.revisionCount(registry, variant.repository) == 1) }
        print("sweep over HTTP: first run \(swept.result.stagesRun) stages run, \(swept.result.stagesReused) reused; "
              + "again \(repeated.result.stagesRun) run, \(repeated.result.stagesReused) reused")
    }

    @Test("the daemon SIGKILLed mid-build: its stage child exits, the restart re-runs the interrupted stage, one variant, fsck clean; cancel and retry")
    func killAndRestart() throws {
        let directory = try TemporaryDirectory()
        let dataDir = try Self.registryWithBase(directory)
        var daemon = try Daemon(dataDirectory: dataDir)
        let client = Self.client(daemon, dataDir)
        let submitted = try client.submitBuild(Self.recipe(#""name": "team/k15", "compression": {"method": "weight-prune", "ratio": 0.15}"#))
        // Kill the daemon as soon as the evaluate stage is running in its child.
        let seen = EventLog()
        _ = try? client.watchBuild(submitted.id) { event in
            seen.add(event)
            return !(event.kind == .progress && event.stage == "evaluate" && event.message != nil)
        }
        #expect(seen.all.contains { $0.kind == .stage && $0.stage == "evaluate" && $0.cached == false })
        daemon.kill()
        // The orphaned stage process notices within a second or two and exits.
        let deadline = Date().addingTimeInterval(10)
        while Self.stageProcesses(dataDir) > 0, Date() < deadline { Thread.sleep(forTimeInterval: 0.25) }
        #expect(Self.stageProcesses(dataDir) == 0)
        let registry = try HubRegistry(dataDirectory: dataDir)
        #expect(try registry.store.build(id: submitted.id)?.state == .running)
        #expect(try Self.revisionCount(registry, "team/k15") == 0)

        daemon = try Daemon(dataDirectory: dataDir)
        defer { daemon.kill() }
        let restarted = Self.client(daemon, dataDir)
        #expect(try restarted.watchBuild(submitted.id) { _ in true }?.state == .succeeded)
        let build = try restarted.build(submitted.id)
        #expect(build.state == .succeeded && build.attempts == 2)
        #expect(build.result.stagesReused == 1 && build.result.stagesRun == 1, "the compression is reused, the evaluation re-run: \(build.result)")
        #expect(try Self.revisionCount(registry, "team/k15") == 1)
        #expect(try registry.card(RepositoryName("team/k15")).metrics.count == 1)
        // Nothing half-made is left in the stage cache's work area but checkpoints.
        let work = try FileManager.default.contentsOfDirectory(atPath: dataDir.appendingPathComponent("builds/stages/.work").path)
        #expect(work.allSatisfy { $0.hasSuffix(".checkpoint") }, "\(work)")
        let fsck = try HubctlBinary.run(["fsck", "--data-dir", dataDir.path])
        #expect(fsck.status == 0 && fsck.stdout.contains("clean"), "\(fsck.stdout)\(fsck.stderr)")

        // Cancelled while fine-tuning: the stage's child is terminated, nothing is registered;
        // retried, it reuses the compression and finishes.
        let tuned = try restarted.submitBuild(Self.recipe(#""name": "team/k15-ft", "compression": {"method": "weight-prune", "ratio": 0.15}, "finetune": {"tokens": 4096, "distill": false}"#))
        let cancelEvents = EventLog()
        let ended = try restarted.watchBuild(tuned.id) { event in
            cancelEvents.add(event)
            // Once, at the fine-tune's first step.
            if event.kind == .progress, event.stage == "finetune", event.stageFraction != nil,
               cancelEvents.all.filter({ $0.kind == .progress && $0.stageFraction != nil }).count == 1 {
                let cancel = try? HubctlBinary.run(["build", "cancel", tuned.id, "--endpoint", restarted.endpoint, "--data-dir", dataDir.path])
                #expect(cancel?.status == 0 && cancel?.stdout.contains("cancelling") == true, "\(cancel?.stderr ?? "")")
            }
            return true
        }
        #expect(ended?.state == .cancelled && ended?.error?.contains("cancelled") == true, "\(String(describing: ended))")
        #expect(Self.stageProcesses(dataDir) == 0)
        #expect(try registry.store.repository(RepositoryName("team/k15-ft")) == nil)
        #expect(try restarted.retryBuild(tuned.id).state == .queued)
        #expect(try restarted.watchBuild(tuned.id) { _ in true }?.state == .succeeded)
        let retried = try restarted.build(tuned.id)
        #expect(retried.attempts == 2 && retried.result.stages.map(\.cached) == [true, false, false], "\(retried.result)")
        #expect(try Self.revisionCount(registry, "team/k15-ft") == 1)
        #expect { try restarted.cancelBuild(tuned.id) } throws: { error in
            guard case HubClientError.server(_, 409, _, let message) = error else { return false }
            return message.contains("succeeded")
        }
    }

    /// Live `hubctl stage run` processes working for this data directory.
    static func stageProcesses(_ dataDir: URL) -> Int {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return pids.filter { pid in
            guard Int(pid) != nil, let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                  let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
            let command = String(decoding: raw, as: UTF8.self).replacingOccurrences(of: "\0", with: " ")
            let state = stat.split(separator: ")").last?.trimmingCharacters(in: .whitespaces).prefix(1)
            return command.contains("stage run") && command.contains(dataDir.path) && state != "Z"
        }.count
    }
}

final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [BuildEvent] = []
    func add(_ event: BuildEvent) { lock.withLock { events.append(event) } }
    var all: [BuildEvent] { lock.withLock { events } }
}
