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
        abstract: "Build variants from a recipe: compress, evaluate, register.",
        subcommands: [Run.self, Plan.self])


    /// Reads and validates a recipe file; every error names its field.
    static func recipe(at path: String) throws -> BuildRecipe {
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read the recipe \(path)") }
        return try BuildRecipe.decode(data, knownMethods: CompressionMethods.all.map(\.name))
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

        /// Runs a stage job in a child hubctl and reads its published output back from the cache.
        func inChild(_ job: StageJob, cache: DirectoryStageCache) throws -> (URL, StageRecord) {
            let file = cache.root.appendingPathComponent(".work/\(job.spec.key.hex).job.json")
            try Data(try Output.json(job).utf8).write(to: file)
            defer { try? FileManager.default.removeItem(at: file) }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            process.arguments = ["stage", "run", file.path] + (data.dataDir.map { ["--data-dir", $0] } ?? [])
                + (threads.map { ["--threads", "\($0)"] } ?? [])
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0, let output = try cache.lookup(job.spec.key) else {
                throw BuildError.stageFailed(stage: job.spec.label, reason: "hubctl stage run exited with status \(process.terminationStatus)")
            }
            return (output, try JSONDecoder().decode(StageRecord.self, from: Data(contentsOf: output.appendingPathComponent("stage.json"))))
        }

        func run() throws {
            let recipe = try Build.recipe(at: recipe)
            if let threads { BLASThreads.count = threads }
            let registry = try data.open()
            let cache = try Build.cache(data)
            let runner = BuildRunner(cache: cache, assetCache: ModelLocator.assetCache) { Output.progress("… \($0)") }
            let files = try ModelLocator.locate(recipe.base, data: data)
            let base = ModelFiles(config: files.config, weights: files.weights, tokenizer: files.tokenizer, tokenizerConfig: files.tokenizerConfig)
            var built: [[String: String]] = []
            for single in recipe.expanded() {
                let output = try runner.build(single, base: base, execute: stageProcesses ? { job in
                    // The child counts its own run; here it is a hit only if it was already cached.
                    if try cache.lookup(job.spec.key) != nil { return try runner.run(job) }
                    return try inChild(job, cache: cache)
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
        @OptionGroup var data: DataDirectoryOption

        func run() throws {
            guard let bytes = FileManager.default.contents(atPath: job) else { throw ValidationError("cannot read the stage job \(job)") }
            let stageJob: StageJob
            do { stageJob = try JSONDecoder().decode(StageJob.self, from: bytes) } catch {
                throw ValidationError("\(job) is not a stage job: \(error)")
            }
            if let threads { BLASThreads.count = threads }
            let runner = BuildRunner(cache: try Build.cache(data), assetCache: ModelLocator.assetCache) { Output.progress("… \($0)") }
            let (output, record) = try runner.run(stageJob)
            Output.progress(String(format: "%@ %@ in %.0f s", stageJob.spec.label, runner.hits > 0 ? "was cached" : "ran", record.seconds))
            print(output.path)
        }
    }
}
