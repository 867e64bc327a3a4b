import Checkpoint
import Foundation
import HubCore
import Transformer

/// Runs a suite on one model and returns its metrics record.
public struct Evaluation {
    public let suite: EvaluationSuite
    /// The directory holding BIG-bench's task files (`gem/xsum/task.json`, ...).
    public let bigbench: URL

    public init(suite: EvaluationSuite, bigbench: URL) {
        self.suite = suite
        self.bigbench = bigbench
    }

    /// Loads every input before measuring anything, so that a missing task file or an empty
    /// corpus fails fast with its own error instead of after minutes of scoring.
    public func run(model: LlamaModel, tokenizer: BPETokenizer, label: String, bytesOnDisk: Int,
                    progress: (String) -> Void = { _ in }) throws -> MetricsRecord {
        let start = DispatchTime.now().uptimeNanoseconds
        let corpusFile = bigbench.appendingPathComponent("gem/xsum/task.json")
        let documents = suite.measuresLoss ? try XSumCorpus.articles(in: corpusFile, range: suite.lossDocuments) : []
        let tasks = try suite.tasks.map { spec in
            let file = spec.path.hasPrefix("/") ? URL(fileURLWithPath: spec.path) : bigbench.appendingPathComponent(spec.path)
            if !spec.path.hasPrefix("/"), !FileManager.default.fileExists(atPath: file.path) {
                progress("extracting \(spec.path) from the BIG-bench sdist")
                try BigBenchSdist(besides: bigbench).extract(spec.path, into: bigbench)
            }
            return try BigBenchTask(name: spec.name, file: file, limit: spec.limit)
        }

        var loss: HeldOutLoss.Result?
        if suite.measuresLoss {
            progress("held-out loss on \(documents.count) xsum articles")
            loss = try HeldOutLoss(context: suite.context).evaluate(model: model, tokenizer: tokenizer, documents: documents)
        }
        var results: [MultipleChoiceAccuracy.Result] = []
        for task in tasks {
            progress("\(task.name): \(task.examples.count) examples")
            results.append(try MultipleChoiceAccuracy.evaluate(model: model, tokenizer: tokenizer, task: task))
        }
        var latency: LatencyProbe.Result?
        if let probe = suite.latency {
            progress("latency")
            latency = try probe.measure(model: model)
        }
        let speed = latency == nil ? nil : MachineSpeed.measure()
        let weights = model.weights
        var total = 0, embedding = weights.embedding.rows * weights.embedding.columns
        total += embedding
        for block in weights.blocks {
            for matrix in [block.q, block.k, block.v, block.o, block.attentionShortcut, block.gate, block.up, block.down, block.mlpShortcut] {
                total += matrix.map { $0.rows * $0.columns } ?? 0
            }
            if block.inputNorm != nil { total += block.shape.inputWidth }
            if block.postAttentionNorm != nil { total += block.shape.attentionOutputWidth }
        }
        total += model.config.finalWidth
        if !model.config.tieWordEmbeddings {
            total += weights.head.rows * weights.head.columns
            embedding += weights.head.rows * weights.head.columns
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let formatter = ISO8601DateFormatter()
        return MetricsRecord(
            model: label, suite: suite.name, createdAt: formatter.string(from: Date()), codeVersion: "hubctl \(HubVersion.current)",
            hardware: .current(), parameters: ParameterCount(total: total, embedding: embedding),
            bytesOnDisk: bytesOnDisk,
            loss: loss.map { loss in
                .init(corpus: "bigbench gem/xsum articles \(suite.lossDocuments.lowerBound)..<\(suite.lossDocuments.upperBound)",
                      documents: loss.documents, windows: loss.windows, tokens: loss.tokens, context: suite.context,
                      crossEntropy: loss.crossEntropy, perplexity: loss.perplexity)
            },
            tasks: results, latency: latency, machineSpeed: speed, peakRSSBytes: ProcessMemory.peakResidentBytes(), seconds: seconds)
    }
}
