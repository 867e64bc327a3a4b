import Checkpoint
import Foundation
import Transformer

/// Zero-shot multiple-choice accuracy: each choice is scored by the log-likelihood of its
/// tokens after the context; `acc` picks the highest sum, `acc_norm` the highest sum per
/// UTF-8 byte of the choice (as lm-evaluation-harness normalizes). An example counts as right
/// when the pick is one of its best-scored choices.
public struct MultipleChoiceAccuracy: Sendable {
    public struct Result: Sendable, Codable, Equatable {
        public let task: String
        public let examples: Int
        public let accuracy: Double
        public let accuracyStandardError: Double
        public let normalizedAccuracy: Double
        public let normalizedAccuracyStandardError: Double
        public let chance: Double

        enum CodingKeys: String, CodingKey {
            case task, examples, accuracy = "acc", accuracyStandardError = "acc_stderr", normalizedAccuracy = "acc_norm"
            case normalizedAccuracyStandardError = "acc_norm_stderr", chance
        }
    }

    /// The choices' summed log-likelihoods, example by example.
    public static func choiceLogLikelihoods(model: LlamaModel, tokenizer: BPETokenizer, task: BigBenchTask) throws -> [[Double]] {
        let scorer = SequenceScorer(model: model)
        return try task.examples.map { example in
            let (context, continuations) = tokenize(example, tokenizer: tokenizer)
            return try scorer.continuationLogLikelihoods(context: context, continuations: continuations).map { $0.reduce(0, +) }
        }
    }

    /// Context and choice tokens. A context's trailing space moves to the front of each choice,
    /// where byte-level BPE expects it (" Paris" is one token; "A: " + "Paris" is not).
    public static func tokenize(_ example: BigBenchTask.Example, tokenizer: BPETokenizer) -> (context: [Int], choices: [[Int]]) {
        var context = example.context
        var lead = ""
        if context.hasSuffix(" ") { context.removeLast(); lead = " " }
        return (tokenizer.encode(context), example.choices.map { tokenizer.encode(lead + $0) })
    }

    public static func evaluate(model: LlamaModel, tokenizer: BPETokenizer, task: BigBenchTask) throws -> Result {
        let likelihoods = try choiceLogLikelihoods(model: model, tokenizer: tokenizer, task: task)
        return score(task: task, likelihoods: likelihoods)
    }

    public static func score(task: BigBenchTask, likelihoods: [[Double]]) -> Result {
        var right: [Double] = [], rightNormalized: [Double] = []
        for (example, values) in zip(task.examples, likelihoods) {
            let pick = values.indices.max { values[$0] < values[$1] }!
            let perByte = values.enumerated().map { $0.element / Double(max(1, example.choices[$0.offset].utf8.count)) }
            let pickNormalized = perByte.indices.max { perByte[$0] < perByte[$1] }!
            right.append(example.correct.contains(pick) ? 1 : 0)
            rightNormalized.append(example.correct.contains(pickNormalized) ? 1 : 0)
        }
        return Result(task: task.name, examples: right.count, accuracy: mean(right), accuracyStandardError: standardError(right),
                      normalizedAccuracy: mean(rightNormalized), normalizedAccuracyStandardError: standardError(rightNormalized),
                      chance: task.chance)
    }

    static func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(max(values.count, 1)) }

    /// Standard error of a mean of 0/1 outcomes, with the sample variance (n − 1).
    static func standardError(_ values: [Double]) -> Double {
        guard values.count > 1 else { return 0 }
        let m = mean(values)
        let variance = values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(values.count - 1)
        return (variance / Double(values.count)).squareRoot()
    }
}
