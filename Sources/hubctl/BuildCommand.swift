import ArgumentParser
import Builds
import Checkpoint
import Compressor
import Foundation
import HubCore
import Registry
import Transformer

struct Build: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build variants from a recipe: compress, fine-tune, evaluate, register.",
        discussion: """
        hubctl build run builds in this process; hubctl build submit queues the recipe on a \
        daemon (hubctl serve), whose workers build it while it serves. Either way every stage \
        lands in the stage cache under the hash of its inputs and is never run twice.
        """,
        subcommands: [Submit.self, Watch.self, List.self, Show.self, Cancel.self, Retry.self, Run.self, Plan.self])


    /// Reads and validates a recipe file; every error names its field.
    static func recipe(at path: String) throws -> BuildRecipe {
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read the recipe \(path)") }
        return try BuildRecipe.decode(data, knownMethods: CompressionMethods.all.map(\.name))
    }

    /// A stage's log lines on standard error (fraction-only events say nothing).
    @Sendable static func printEvent(_ event: StageEvent) {
        if !event.message.isEmpty { Output.progress("… \(event.message)") }
    }

    static func cache(_ data: DataDirectoryOption) throws -> DirectoryStageCache {
        try DirectoryStageCache(root: data.url.appendingPathComponent("builds/stages"))
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a build recipe in this process and register what it makes.",
            discussion: """
            A recipe (schemas/build-recipe.schema.json) names a base, a compression (or a \\
            sweep of methods × ratios) and an evaluation suite. Each variant is compressed, \\
            evaluated and committed to the registry with the recipe on its lineage edge and \\
            the metrics record beside it. Every stage's output is kept in \\
            <data-dir>/builds/stages under the hash of its inputs (input weights, settings, \\
            code version), so a stage already run is reused, and a build killed midway \\
            resumes from its last finished stage when run again. Registering the same build \\
            twice changes nothing.

            Example:
              echo '{"schema_version": 1, "base": "smollm2/SmolLM2-135M-Instruct",
                "name": "team/w20", "compression": {"method": "width-prune", "ratio": 0.2},
                "evaluation": {"suite": "smoke", "latency": true}}' > w20.json
              hubctl build run w20.json
            """
        )
        @Argument(help: "The recipe file.") var recipe: String
        @Option(help: "BLAS threads (default: all cores).") var threads: Int?
        @Flag(help: "Run each stage as its own process (hubctl stage run), so that a crash in a stage cannot take this one down.")
        var stageProcesses = false
        @Flag(help: "Print the registered variants as JSON.") var json = false
        @OptionGroup var data: DataDirectoryOption

        func run() throws {
            let recipe = try Build.recipe(at: recipe)
            if let threads { BLASThreads.count = threads }
            let registry = try data.open()
            let cache = try Build.cache(data)
            let runner = BuildRunner(cache: cache, assetCache: ModelLocator.assetCache, progress: Build.printEvent)
            let base = try registry.modelFiles(recipe.base).files
            let children = ChildProcessStages(executable: ChildProcessStages.currentExecutable, cache: cache,
                                              dataDirectory: registry.dataDirectory, threads: threads)
            var built: [[String: String]] = []
            for single in recipe.expanded() {
                let output = try runner.build(single, base: base, execute: stageProcesses ? { job in
                    // The child counts its own run; here it is a hit only if it was already cached.
                    if try cache.lookup(job.spec.key) != nil { return try runner.run(job) }
                    return try children.run(job, cancellation: Cancellation(), events: Build.printEvent)
                } : nil)
                let revision = try registry.registerBuild(output, author: NSUserName())
                let seconds = output.stages.map { String(format: "%@ %.0f s", $0.spec.kind.rawValue, $0.seconds) }.joined(separator: ", ")
                if !json {
                    print(String(format: "%@ at revision %@: loss %@ (%@)", single.name, revision.id,
                                 output.metrics.loss.map { String(format: "%.3f", $0.crossEntropy) } ?? "-", seconds))
                }
                built.append(["repository": single.name, "revision": revision.id])
            }
            if json { print(try Output.json(built)) }
            Output.progress(stageProcesses ? "stages: \(runner.hits) reused from the cache, the rest run in child processes"
                                           : "stages: \(runner.misses) run, \(runner.hits) reused from the cache")
        }
    }

    struct Plan: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a recipe and list the variants and stages it would build.")
        @Argument(help: "The recipe file.") var recipe: String

        func run() throws {
            let recipe = try Build.recipe(at: recipe)
            for single in recipe.expanded() {
                let c = single.compression!
                print(String(format: "%@: %@ at r = %.2f, then the %@ suite", single.name, c.method, c.ratio, single.evaluation.suite))
            }
        }
    }
}

struct Stage: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run build stages by hand, one at a time.",
        subcommands: [Run.self])

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run one stage job (files in, files out) into the stage cache.",
            discussion: """
            A stage job (what hubctl build run --stage-processes writes) names the stage's \
            kind, settings and input sha256, and its input files by path. Its output lands in \
            <data-dir>/builds/stages/<key> with its stage.json, or is found there already. \
            This is the unit a cluster scheduler would run: only files in, files out. Prints \
            the output directory.
            """
        )
        @Argument(help: "The stage job (JSON).") var job: String
        @Option(help: "BLAS threads (default: all cores).") var threads: Int?
        @Flag(help: "Write progress as one JSON object per line on standard error (what a build's scheduler reads).")
        var events = false
        @Option(help: ArgumentHelp("Exit as soon as the process with this id is no longer this one's parent.", discussion: """
            A daemon that runs stages as children passes its own pid, so that a daemon killed \
            outright does not leave a stage running beside the one its restart starts.
            """))
        var parentPID: Int32?
        @OptionGroup var data: DataDirectoryOption

        /// One event as a JSON line on standard error.
        @Sendable static func emit(_ event: StageEvent) {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            if let line = try? encoder.encode(event) { FileHandle.standardError.write(line + Data("\n".utf8)) }
        }

        /// Watches the parent once a second: an orphan is re-parented, and then exits at once
        /// (its unfinished work directory is never published, so nothing half-made remains).
        static func exitWhenOrphaned(parent: pid_t) {
            guard getppid() == parent else { Foundation.exit(75) }
            Thread.detachNewThread {
                while true {
                    Thread.sleep(forTimeInterval: 1)
                    if getppid() != parent { _exit(75) }
                }
            }
        }

        func run() throws {
            guard let bytes = FileManager.default.contents(atPath: job) else { throw ValidationError("cannot read the stage job \(job)") }
            let stageJob: StageJob
            do { stageJob = try JSONDecoder().decode(StageJob.self, from: bytes) } catch {
                throw ValidationError("\(job) is not a stage job: \(error)")
            }
            if let threads { BLASThreads.count = threads }
            if let parentPID { Self.exitWhenOrphaned(parent: pid_t(parentPID)) }
            let runner = BuildRunner(cache: try Build.cache(data), assetCache: ModelLocator.assetCache,
                                     progress: events ? Self.emit : Build.printEvent)
            let (output, record) = try runner.run(stageJob)
            Output.progress(String(format: "%@ %@ in %.0f s", stageJob.spec.label, runner.hits > 0 ? "was cached" : "ran", record.seconds))
            print(output.path)
        }
    }
}

// MARK: - Builds run by a daemon

extension Build {
    struct Submit: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue a recipe on a daemon, which builds and registers the variants.",
            discussion: """
            The daemon validates the recipe (a bad one is refused naming the field), queues \\
            it and prints the build's id; its workers then compress, fine-tune and evaluate, \\
            reusing any stage already in the stage cache, and commit each variant with its \\
            lineage and metrics. Needs a token with write scope. A sweep is one build with \\
            one id. With --watch it then follows the build like hubctl build watch.

            Example:
              hubctl build submit w20.json --watch
            """
        )
        @Argument(help: "The recipe file (schemas/build-recipe.schema.json).") var recipe: String
        @Flag(help: "Follow the build's progress until it ends.") var watch = false
        @Flag(help: "Print the queued build as JSON.") var json = false
        @OptionGroup var remote: EndpointOptions

        func run() throws {
            guard let bytes = FileManager.default.contents(atPath: recipe) else { throw ValidationError("cannot read the recipe \(recipe)") }
            let client = remote.client()
            let record = try client.submitBuild(bytes)
            if json { print(try Output.json(record)) } else {
                print(record.id)
                Output.progress("queued \(record.recipe.expanded().count) variant(s) from \(recipe) as build \(record.id)")
            }
            if watch { try Watch.follow(record.id, client: client, quiet: json) }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a daemon's builds, newest first.")
        @Option(help: "Only builds in these states (comma-separated: queued,running,succeeded,failed,cancelled).")
        var state: String?
        @Option(help: "At most this many.") var limit = 50
        @Flag(help: "Print the builds as JSON.") var json = false
        @OptionGroup var remote: EndpointOptions

        func run() throws {
            let states = try state.map {
                try $0.split(separator: ",").map { name in
                    guard let state = BuildState(rawValue: String(name)) else { throw ValidationError("'\(name)' is not a build state") }
                    return state
                }
            }
            let builds = try remote.client().builds(states: states, limit: limit)
            if json { print(try Output.json(builds)); return }
            for build in builds {
                let made = build.result.variants.map(\.repository).joined(separator: ", ")
                print("\(build.id)  \(build.state.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0))  \(build.createdAt)  "
                      + "\(build.recipe.name) (\(build.recipe.expanded().count) variant(s))" + (made.isEmpty ? "" : " → \(made)"))
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one build: state, attempts, error, variants and stage counts.")
        @Argument(help: "The build id.") var id: String
        @Flag(help: "Print the build as JSON.") var json = false
        @OptionGroup var remote: EndpointOptions

        func run() throws {
            let build = try remote.client().build(id)
            if json { print(try Output.json(build)); return }
            Self.describe(build)
        }

        static func describe(_ build: BuildRecord) {
            print("build \(build.id): \(build.state.rawValue) (attempt \(build.attempts), by \(build.author), queued \(build.createdAt))")
            if let error = build.error { print("  error: \(error)") }
            for variant in build.result.variants {
                print("  \(variant.repository) at \(variant.revision.prefix(10))" + (variant.loss.map { String(format: ", loss %.3f", $0) } ?? ""))
            }
            print("  stages: \(build.result.stagesRun) run, \(build.result.stagesReused) reused from the cache")
            for stage in build.result.stages {
                print(String(format: "    %@ %@: %.0f s%@", stage.cell, stage.stage, stage.seconds, stage.cached ? " (cached)" : ""))
            }
        }
    }

    struct Watch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Follow a build's progress until it ends.",
            discussion: """
            Reads the build's server-sent events (GET /api/builds/{id}/events): a progress bar \\
            with the stage, its fraction and ETA on a terminal, log lines otherwise. If the \\
            connection drops (the daemon restarted), it reconnects and carries on. Exit status: \\
            0 the build succeeded; 1 it failed or was cancelled.
            """
        )
        @Argument(help: "The build id.") var id: String
        @OptionGroup var remote: EndpointOptions

        func run() throws { try Self.follow(id, client: remote.client(), quiet: false) }

        static func follow(_ id: String, client: HubClient, quiet: Bool) throws {
            let terminal = isatty(STDERR_FILENO) != 0
            var reconnects = 0, last: BuildEvent?
            while true {
                do {
                    last = try client.watchBuild(id) { event in
                        if !quiet { show(event, terminal: terminal) }
                        return true
                    }
                    break
                } catch {
                    // The daemon may be restarting: it re-queues the build and replays events.
                    reconnects += 1
                    guard reconnects <= 60 else { throw error }
                    if !quiet { Output.progress("\n(lost the event stream: \(error); reconnecting)") }
                    Thread.sleep(forTimeInterval: 2)
                }
            }
            let build = try client.build(id)
            if !quiet { Show.describe(build) }
            guard build.state == .succeeded else {
                throw ExitCode.failure
            }
            _ = last
        }

        static func show(_ event: BuildEvent, terminal: Bool) {
            let cell = event.cell.map { name in (event.cells ?? 1) > 1 ? "\(name) (\((event.cellIndex ?? 0) + 1)/\(event.cells!))" : name } ?? ""
            switch event.kind {
            case .state:
                Output.progress((terminal ? "\r\u{1B}[K" : "") + "build \(event.build): \(event.message ?? event.state?.rawValue ?? "")")
            case .stage, .variant:
                Output.progress((terminal ? "\r\u{1B}[K" : "") + "\(cell): \(event.message ?? "")")
            case .progress:
                if let message = event.message, !terminal { Output.progress("  \(message)") }
                guard terminal else { return }
                let fraction = event.fraction ?? 0, width = 30, filled = Int(Double(width) * min(max(fraction, 0), 1))
                let eta = event.etaSeconds.map { String(format: ", stage ETA %dm%02ds", Int($0) / 60, Int($0) % 60) } ?? ""
                let stage = event.stage.map { $0 + (event.stageFraction.map { String(format: " %.0f%%", $0 * 100) } ?? "") } ?? ""
                let line = "[\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] "
                    + String(format: "%3.0f%% ", fraction * 100) + "\(cell) \(stage)\(eta)"
                FileHandle.standardError.write(Data(("\r\u{1B}[K" + line + (event.message.map { "  " + $0.prefix(60) } ?? "")).utf8))
            }
        }
    }

    struct Cancel: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel a build: a queued one at once, a running one by stopping its stage.")
        @Argument(help: "The build id.") var id: String
        @OptionGroup var remote: EndpointOptions

        func run() throws {
            let build = try remote.client().cancelBuild(id)
            print(build.state == .cancelled ? "cancelled \(id)" : "cancelling \(id) (its running stage is being stopped)")
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue a failed or cancelled build again; stages it finished come from the cache.")
        @Argument(help: "The build id.") var id: String
        @Flag(help: "Follow it until it ends.") var watch = false
        @OptionGroup var remote: EndpointOptions

        func run() throws {
            let client = remote.client()
            let build = try client.retryBuild(id)
            print("queued \(build.id) again (attempt \(build.attempts + 1))")
            if watch { try Watch.follow(id, client: client, quiet: false) }
        }
    }
}
