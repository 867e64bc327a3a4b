import ArgumentParser
import Evaluator
import Foundation
import HubCore
import Transformer

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a model: held-out loss, zero-shot accuracy, latency and memory.",
        discussion: """
        The smoke suite takes well under a minute: 10 held-out BBC articles, 20 examples of each \
        task, one latency probe. The full suite is what variants are compared by: 101 held-out \
        articles (BIG-bench gem/xsum 900..<1001, never used for calibration or fine-tuning), \
        300 examples of each task, prefill latency at 32/128/512 tokens and decode latency, each \
        p50/p95 after a warm-up. Every record carries the hardware profile it was measured on.

        Tasks (BIG-bench JSON, scored zero-shot; acc = highest summed log-likelihood, acc_norm = \
        highest per byte; choices are scored as continuations, not listed in the prompt):
        general_knowledge, movie_recommendation, goal_inference, step_inference by default (the \
        base model is clearly above chance on them); also social_iqa, epistemic_reasoning, \
        winowhy, physical_intuition, cause_and_effect. Any other BIG-bench JSON \
        multiple-choice task works by its directory name (with its subtask: \
        logical_deduction/three_objects), extracted from the verified sdist the first time; so \
        does a task file of your own in the same format, by path (./my_task.json).

        Examples:
          hubctl eval smollm2/SmolLM2-135M-Instruct
          hubctl eval smollm2-hf --suite full --json > metrics.json
          hubctl eval smollm2-hf --tasks logical_deduction/three_objects,./my_task.json
        """
    )

    @Argument(help: "A model directory or namespace/name[@revision].") var model: String
    @Option(help: "smoke (10 articles, 20 examples a task, ~30 s), full (101 articles, 300 a task, ~6 min) or latency (speed and memory only, ~1 min).") var suite = "smoke"
    @Option(help: "Comma-separated task names or task.json paths (default: the four default tasks).") var tasks: String?
    @Option(help: "Examples per task, overriding the suite's.") var limit: Int?
    @Flag(help: "Skip the latency probes.") var noLatency = false
    @Flag(help: "Skip the held-out loss.") var noLoss = false
    @Option(help: "BLAS threads (default: all cores).") var threads: Int?
    @Option(help: "Directory of BIG-bench task files (default: $HUB_CACHE/bigbench).") var bigbench: String?
    @Flag(help: "Print the metrics record as JSON (schemas/metrics.schema.json).") var json = false
    @Flag(help: "Store the record in the registry beside the model (a registry model only).") var record = false
    @OptionGroup var data: DataDirectoryOption

    func run() throws {
        if let threads { BLASThreads.count = threads }
        var chosen = try EvaluationSuite.named(suite, tasks: tasks.map { $0.split(separator: ",").map(String.init) })
        if let limit { chosen.tasks = chosen.tasks.map { .init(name: $0.name, path: $0.path, limit: limit) } }
        if noLatency { chosen.latency = nil }
        if noLoss { chosen.measuresLoss = false }
        let files = try ModelLocator.locate(model, data: data)
        let (runtime, tokenizer) = try ModelLocator.load(files)
        let bytes = [files.config, files.weights, files.tokenizer].compactMap {
            (try? FileManager.default.attributesOfItem(atPath: $0.path)[.size]) as? Int
        }.reduce(0, +)
        let directory = bigbench.map { URL(fileURLWithPath: $0) } ?? ModelLocator.assetCache.appendingPathComponent("bigbench")
        let result = try Evaluation(suite: chosen, bigbench: directory).run(
            model: runtime, tokenizer: tokenizer, label: files.label, bytesOnDisk: bytes) { Output.progress("… \($0)") }
        if let latency = result.latency, latency.measuredUnderLoad {
            Output.progress(String(format: "warning: decode p95 %.1f ms is over %.0f× its p50 %.1f ms: other work was taking the cores; "
                                   + "hubctl pull prefers a quiet record of this model, so measure again on idle cores (--suite latency --record)",
                                   latency.decodePerToken.p95Milliseconds, LatencyProbe.Result.loadedSpread, latency.decodePerToken.p50Milliseconds))
        }
        if self.record {
            let parts = model.split(separator: "@", maxSplits: 1).map(String.init)
            guard !FileManager.default.fileExists(atPath: model) else {
                throw ValidationFailure("--record needs a registry model (namespace/name[@revision]), not a directory")
            }
            let revision = try data.open().recordMetrics(result, for: RepositoryName(parts[0]), revision: parts.count > 1 ? parts[1] : "main")
            Output.progress("recorded the \(result.suite) metrics of revision \(revision)")
        }
        print(json ? try Output.json(result) : MetricsRenderer.text(result))
    }
}

enum MetricsRenderer {
    static func text(_ r: MetricsRecord) -> String {
        var lines = ["\(r.model) — \(r.suite) suite, \(String(format: "%.1f", r.seconds)) s",
                     "machine      \(r.hardware.cpuModel), \(r.hardware.logicalCores) cores, \(r.hardware.blasThreads) BLAS threads"]
        lines.append("parameters   \(CardRenderer.grouped(r.parameters.total)) (\(CardRenderer.grouped(r.parameters.nonEmbedding)) non-embedding), \(Output.bytes(r.bytesOnDisk)) on disk")
        if let loss = r.loss {
            lines.append(String(format: "test loss    %.4f nats/token, perplexity %.2f (%d tokens, %d documents, context %d)",
                                loss.crossEntropy, loss.perplexity, loss.tokens, loss.documents, loss.context))
        }
        if !r.tasks.isEmpty {
            lines.append("task                      n     acc            acc_norm       chance")
            for t in r.tasks {
                lines.append(String(format: "%@ %5d  %.3f ± %.3f  %.3f ± %.3f  %.3f", t.task.padding(toLength: 22, withPad: " ", startingAt: 0),
                                    t.examples, t.accuracy, t.accuracyStandardError, t.normalizedAccuracy, t.normalizedAccuracyStandardError, t.chance))
            }
        }
        if let latency = r.latency {
            for p in latency.prefill {
                lines.append(String(format: "prefill %4d tokens  p50 %.1f ms  p95 %.1f ms  (%.0f tok/s)", p.tokens,
                                    p.latency.p50Milliseconds, p.latency.p95Milliseconds, p.tokensPerSecond))
            }
            lines.append(String(format: "decode per token     p50 %.2f ms  p95 %.2f ms  (%.1f tok/s)", latency.decodePerToken.p50Milliseconds,
                                latency.decodePerToken.p95Milliseconds, latency.decodeTokensPerSecond))
        }
        lines.append("peak RSS     \(Output.bytes(r.peakRSSBytes))")
        return lines.joined(separator: "\n")
    }
}
