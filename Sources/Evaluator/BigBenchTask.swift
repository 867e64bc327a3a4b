import Foundation

/// A BIG-bench JSON multiple-choice task, formatted for zero-shot scoring with the task's own
/// prefixes: `task_prefix + example_input_prefix + input + example_output_prefix`, each
/// choice a continuation of that context; BIG-bench's defaults apply where the task is silent
/// ("\nQ: ", "\nA: "). The choices are not listed in the prompt unless `listChoices` is set
/// (then as BIG-bench's runner does, sorted, each after `choice_prefix`): small models score
/// continuations far better than they read option lists, so listing them mostly adds noise.
public struct BigBenchTask: Sendable {
    public struct Example: Sendable {
        public let context: String
        public let choices: [String]
        /// Indices of the choices with the highest target score.
        public let correct: Set<Int>
    }

    public let name: String
    public let examples: [Example]

    public init(name: String, file: URL, limit: Int? = nil, listChoices: Bool = false) throws {
        self.name = name
        guard FileManager.default.fileExists(atPath: file.path) else { throw EvaluatorError.missingFile(file.path) }
        guard let root = try? JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any] else {
            throw EvaluatorError.invalidTask(path: file.path, reason: "not a JSON object")
        }
        guard let rawExamples = root["examples"] as? [[String: Any]], !rawExamples.isEmpty else {
            throw EvaluatorError.invalidTask(path: file.path, reason: "no examples")
        }
        let taskPrefix = root["task_prefix"] as? String ?? ""
        let inputPrefix = root["example_input_prefix"] as? String ?? "\nQ: "
        let outputPrefix = root["example_output_prefix"] as? String ?? "\nA: "
        let choicePrefix = root["choice_prefix"] as? String ?? "\n  choice: "
        let appendChoices = listChoices && (root["append_choices_to_input"] as? Bool ?? true)

        var examples: [Example] = []
        for (index, raw) in rawExamples.enumerated() {
            if let limit, examples.count == limit { break }
            guard let input = raw["input"] as? String, let scores = raw["target_scores"] as? [String: Any] else {
                throw EvaluatorError.invalidTask(path: file.path, reason: "example \(index) lacks input or target_scores")
            }
            let choices = scores.keys.sorted()
            let values = choices.map { (scores[$0] as? NSNumber)?.doubleValue ?? 0 }
            guard choices.count >= 2, let best = values.max(), best > 0 else {
                throw EvaluatorError.invalidTask(path: file.path, reason: "example \(index) needs two or more choices and a positive target score")
            }
            var text = input
            if appendChoices { text += choicePrefix + choices.joined(separator: choicePrefix) }
            let context = taskPrefix + inputPrefix + text + outputPrefix
            let correct = Set(values.enumerated().filter { $0.element == best }.map(\.offset))
            examples.append(Example(context: context, choices: choices, correct: correct))
        }
        self.examples = examples
    }

    /// Expected accuracy of a uniformly random pick.
    public var chance: Double {
        examples.map { Double($0.correct.count) / Double($0.choices.count) }.reduce(0, +) / Double(examples.count)
    }
}
