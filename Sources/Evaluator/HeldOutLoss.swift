import Checkpoint
import Foundation
import Transformer

/// Test cross-entropy on held-out text: documents are tokenized, joined with the
/// end-of-text token between them, cut into non-overlapping windows of `context` tokens, and
/// every token after the first of its window is predicted. The windows, and so the figure,
/// depend only on the text, the tokenizer and `context`.
public struct HeldOutLoss: Sendable {
    public let context: Int

    public init(context: Int = 512) {
        self.context = context
    }

    public struct Result: Sendable, Codable, Equatable {
        public let documents: Int
        public let windows: Int
        /// Tokens whose probability was scored.
        public let tokens: Int
        /// Mean negative log-likelihood per scored token, in nats.
        public let crossEntropy: Double
        public var perplexity: Double { exp(crossEntropy) }
    }

    /// The windows of token ids the documents make.
    public func windows(of documents: [String], tokenizer: BPETokenizer) throws -> [[Int]] {
        guard !documents.isEmpty, documents.contains(where: { !$0.isEmpty }) else { throw EvaluatorError.emptyCorpus("(no documents)") }
        let separator = tokenizer.id(of: "<|endoftext|>") ?? tokenizer.eosTokenID
        var stream: [Int] = []
        for (index, document) in documents.enumerated() {
            if index > 0, let separator { stream.append(separator) }
            stream += tokenizer.encode(document)
        }
        return stride(from: 0, to: stream.count, by: context).map { Array(stream[$0 ..< min($0 + context, stream.count)]) }
            .filter { $0.count >= 2 }
    }

    public func evaluate(model: LlamaModel, tokenizer: BPETokenizer, documents: [String]) throws -> Result {
        let windows = try windows(of: documents, tokenizer: tokenizer)
        guard !windows.isEmpty else { throw EvaluatorError.emptyCorpus("(fewer than two tokens)") }
        let scorer = SequenceScorer(model: model, tokensPerBatch: context)
        var total = 0.0, count = 0
        for window in windows {
            let values = try scorer.tokenLogProbabilities([window])[0]
            total -= values.reduce(0, +)
            count += values.count
        }
        return Result(documents: documents.count, windows: windows.count, tokens: count, crossEntropy: total / Double(count))
    }
}

/// The held-out text of the suites: BBC articles from BIG-bench's gem/xsum. Articles
/// 900..<1001 are the test split; 0..<900 stay free for calibration and fine-tuning, so that
/// evaluation text is never seen by a compressor or a recovery fine-tune.
public enum XSumCorpus {
    public static let testRange = 900 ..< 1001
    public static let trainingRange = 0 ..< 900
    /// The calibration text compression reads unless given another.
    public static let calibrationRange = 0 ..< 64

    /// The default calibration text (the calibration articles, blank-line separated) and how
    /// recipes name its source; `bigbench` is the task directory ($HUB_CACHE/bigbench).
    public static func calibrationText(bigbench: URL) throws -> (text: String, source: String) {
        let articles = try articles(in: bigbench.appendingPathComponent("gem/xsum/task.json"), range: calibrationRange)
        return (articles.joined(separator: "\n\n"),
                "bigbench gem/xsum articles \(calibrationRange.lowerBound)..<\(calibrationRange.upperBound)")
    }

    public static func articles(in file: URL, range: Range<Int>) throws -> [String] {
        guard FileManager.default.fileExists(atPath: file.path) else { throw EvaluatorError.missingFile(file.path) }
        guard let root = try? JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any],
              let examples = root["examples"] as? [[String: Any]] else {
            throw EvaluatorError.invalidTask(path: file.path, reason: "no examples")
        }
        let articles = examples[range.clamped(to: 0 ..< examples.count)].compactMap { $0["input"] as? String }.filter { !$0.isEmpty }
        guard !articles.isEmpty else { throw EvaluatorError.emptyCorpus(file.path) }
        return articles
    }
}
