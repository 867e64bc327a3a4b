import ArgumentParser
import Evaluator
import Foundation
import HubCore
import Registry
import Transformer

extension Budget.Preference: ExpressibleByArgument {}

struct Pull: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pull the variant of a base that fits a latency, memory and quality budget.",
        discussion: """
        Reads the base's family from the daemon (the base and every variant made from it, \
        with their metrics records), keeps the variants that meet every constraint, takes the \
        best by --prefer, and downloads it into a huggingface_hub-style cache, so that \
        transformers loads it offline. Every candidate is printed with each constraint, the \
        measured value, its spread and why it was kept or dropped.

        Latency counts as measured on this machine (same CPU model and BLAS threads). A \
        latency measured only elsewhere is scaled by the two machines' speeds (sgemm for \
        prefill, memory bandwidth for decode), from a short local calibration run; the \
        candidate says so. Memory is the peak resident set measured while evaluating.

        --max-latency alone bounds the time per decoded token. With --prompt-tokens and \
        --new-tokens it bounds prefilling the prompt plus decoding the new tokens.

        When nothing fits, the nearest variants are shown with, for each compression \
        method, the ratio that interpolating between its measured variants predicts would \
        fit, and the commands that build it.

        Exit status: 0 pulled (or chosen, with --dry-run); 3 nothing fits the budget; \
        1 any other error; 64 bad usage.

        Examples:
          hubctl pull smollm2/SmolLM2-135M-Instruct --max-latency 20ms \\
              --max-memory 600MB
          hubctl pull smollm2/SmolLM2-135M-Instruct --max-latency 2s \\
              --prompt-tokens 512 --new-tokens 32 --max-loss 4.2 --prefer speed
          hubctl pull --any-base --max-memory 400MB --min-accuracy 0.4 --dry-run --json
        """
    )
    @Argument(help: "The base, as namespace/name[@revision]; omit with --any-base.") var base: String?
    @Option(help: "Latency ceiling: 30ms, 0.5s (a bare number is milliseconds).") var maxLatency: String?
    @Option(help: "Prompt tokens to prefill within --max-latency.") var promptTokens = 0
    @Option(help: "Tokens to decode within --max-latency.") var newTokens = 0
    @Option(help: "Memory ceiling: 300MB, 1.2GB, 512MiB (a bare number is bytes).") var maxMemory: String?
    @Option(help: "Lowest mean task accuracy to accept.") var minAccuracy: Double?
    @Option(help: "Highest held-out loss (nats per token) to accept.") var maxLoss: Double?
    @Option(help: "What to favour among variants that fit: quality, speed or size.") var prefer: Budget.Preference = .quality
    @Flag(help: "Choose among the variants of every base in the registry.") var anyBase = false
    @Option(help: "BLAS threads the model will run with (default: all cores).") var threads: Int?
    @Option(help: "Cache directory (default: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub).")
    var cacheDir: String?
    @Option(help: "Parallel file downloads.") var parallel = 4
    @Flag(help: "Choose and print; download nothing.") var dryRun = false
    @Flag(help: "Print the selection (and the path) as JSON.") var json = false
    @OptionGroup var remote: EndpointOptions

    func validate() throws {
        if base == nil, !anyBase { throw ValidationError("name a base (namespace/name), or pass --any-base to consider every base") }
        if base != nil, anyBase { throw ValidationError("give either a base or --any-base, not both") }
        _ = try budget()
        if parallel < 1 { throw ValidationError("--parallel must be at least 1") }
    }

    func budget() throws -> Budget {
        if promptTokens < 0 || newTokens < 0 { throw ValidationError("--prompt-tokens and --new-tokens cannot be negative") }
        if (promptTokens > 0 || newTokens > 0), maxLatency == nil {
            throw ValidationError("--prompt-tokens and --new-tokens shape --max-latency; give --max-latency too")
        }
        let budget = Budget(maxLatencyMilliseconds: try maxLatency.map(Self.milliseconds), promptTokens: promptTokens, newTokens: newTokens,
                            maxMemoryBytes: try maxMemory.map(Self.bytes), minAccuracy: minAccuracy, maxLoss: maxLoss, preference: prefer)
        if budget.maxLatencyMilliseconds == nil, budget.maxMemoryBytes == nil, minAccuracy == nil, maxLoss == nil {
            throw ValidationError("give at least one constraint: --max-latency, --max-memory, --min-accuracy or --max-loss")
        }
        return budget
    }

    static func milliseconds(_ text: String) throws -> Double {
        let value = text.trimmingCharacters(in: .whitespaces).lowercased()
        for (suffix, scale) in [("ms", 1.0), ("s", 1000.0), ("", 1.0)] where value.hasSuffix(suffix) {
            if let number = Double(value.dropLast(suffix.count)), number > 0 { return number * scale }
        }
        throw ValidationError("--max-latency '\(text)' is not a duration such as 30ms or 0.5s")
    }

    static func bytes(_ text: String) throws -> Int {
        let value = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Double)] = [("KIB", 1024), ("MIB", 1_048_576), ("GIB", 1_073_741_824), ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("B", 1), ("", 1)]
        for (suffix, scale) in units where value.hasSuffix(suffix) {
            if let number = Double(value.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)), number > 0 {
                return Int(number * scale)
            }
        }
        throw ValidationError("--max-memory '\(text)' is not a size such as 300MB, 1.2GB or 512MiB")
    }

    func run() throws {
        let budget = try budget()
        let client = remote.client()
        let members = try family(client)
        let blasThreads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        let here = HardwareProfile.current()
        let selector = VariantSelector(cpuModel: here.cpuModel, blasThreads: blasThreads, blas: here.blas) {
            BLASThreads.count = blasThreads
            Output.progress("calibrating this machine's speed to scale latency measured elsewhere…")
            return MachineSpeed.measure()
        }
        var selection = selector.select(members, budget: budget)
        if selection.chosen == nil, let base {
            // Nothing built fits: the base's fitted laws may say what would.
            let name = try RepositoryName(String(base.split(separator: "@")[0]))
            if let laws = try client.laws(of: name) { selection = selection.adding(selector.suggestions(from: laws, budget: budget)) }
        }
        if !json { PullReport.print(selection) }
        guard let chosen = selection.chosen else {
            if json { print(try Output.json(PullResult(selection: selection, snapshot: nil))) }
            throw ExitCode(3)
        }
        var snapshot: String?
        if !dryRun {
            let cache = HuggingFaceCache(root: cacheDir.map { URL(fileURLWithPath: $0) } ?? HuggingFaceCache.defaultRoot)
            let name = try RepositoryName(chosen.repository)
            let outcome = try cache.pull(name, revision: chosen.revision, isMain: try client.mainRevision(of: name) == chosen.revision, client: client,
                                         parallel: parallel) { done, total in Output.transfer("downloading \(name)", done: done, total: total) }
            if isatty(STDERR_FILENO) != 0 { Output.progress("") }
            Output.progress("\(outcome.files) files, \(Output.bytes(outcome.downloadedBytes)) downloaded of \(Output.bytes(outcome.totalBytes)), sha256 verified")
            snapshot = outcome.snapshot.path
        }
        if json {
            print(try Output.json(PullResult(selection: selection, snapshot: snapshot)))
        } else if let snapshot {
            print(snapshot)
        }
    }

    /// The base's family, or every base's with --any-base.
    func family(_ client: HubClient) throws -> [FamilyMember] {
        if let base {
            let parts = base.split(separator: "@", maxSplits: 1).map(String.init)
            let name = try RepositoryName(parts[0])
            return try client.family(of: name, revision: parts.count > 1 ? parts[1] : "main")
        }
        let members = try client.allFamilies()
        guard !members.isEmpty else { throw ValidationError("the registry at \(client.endpoint) holds no base models") }
        return members
    }
}

struct PullResult: Encodable {
    let selection: Selection
    let snapshot: String?
}

/// The human-readable account of a selection, on stderr so that stdout carries only the path.
enum PullReport {
    static func print(_ selection: Selection) {
        let budget = selection.budget
        var limits: [String] = []
        if let latency = budget.maxLatencyMilliseconds { limits.append(String(format: "latency ≤ %.1f ms (%@)", latency, budget.latencyMeaning)) }
        if let memory = budget.maxMemoryBytes { limits.append("memory ≤ \(Output.bytes(memory))") }
        if let accuracy = budget.minAccuracy { limits.append(String(format: "accuracy ≥ %.3f", accuracy)) }
        if let loss = budget.maxLoss { limits.append(String(format: "loss ≤ %.3f", loss)) }
        var lines = ["budget: \(limits.joined(separator: ", ")); prefer \(budget.preference.rawValue)", ""]
        for candidate in selection.candidates {
            let verdict = candidate.reference == selection.chosen?.reference ? "CHOSEN" : candidate.kept ? "fits" : "dropped"
            var what = candidate.method.map { String(format: "%@ r = %.2f", $0, candidate.ratio) } ?? "base"
            if candidate.fineTuneTokens > 0 { what += ", fine-tuned on \(candidate.fineTuneTokens) tokens" }
            lines.append("\(verdict.padding(toLength: 8, withPad: " ", startingAt: 0)) \(candidate.repository)@\(candidate.revision.prefix(12))  \(what), \(Output.bytes(candidate.bytes))")
            for check in candidate.checks {
                lines.append("           \(check.passed ? "✓" : "✗") \(check.constraint): \(check.reason)")
            }
        }
        if selection.chosen == nil {
            lines.append("")
            lines.append("nothing fits this budget. Nearest: " + selection.candidates.prefix(3).map { "\($0.repository)@\($0.revision.prefix(12))" }
                .joined(separator: ", "))
            if selection.suggestions.isEmpty {
                lines.append("no compression method's measured variants predict a ratio that fits; relax a constraint,"
                             + " or build and evaluate more variants")
            }
            for suggestion in selection.suggestions.prefix(3) {
                let figures = suggestion.predicted.sorted { $0.key < $1.key }.map { key, value in
                    key == "memory_bytes" ? "memory \(Output.bytes(Int(value)))" : String(format: "%@ %.3g", key, value)
                }
                lines.append(String(format: "\nwould fit: %@ at r = %.2f (predicted %@; %@). Build it with:", suggestion.method, suggestion.ratio,
                                    figures.joined(separator: ", "), suggestion.basis))
                lines += suggestion.commands.map { "  " + $0 }
            }
        }
        if let speed = selection.calibration {
            lines.append(String(format: "\nthis machine: sgemm %.0f GFLOP/s, memory %.1f GB/s (used to scale latency measured elsewhere)",
                                speed.sgemmGFLOPS, speed.memoryGBPS))
        }
        Output.progress(lines.joined(separator: "\n"))
    }
}
