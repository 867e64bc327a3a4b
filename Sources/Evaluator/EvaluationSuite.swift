import Foundation

/// What an evaluation measures: which held-out documents, which tasks and how many examples
/// of each, which latency probes. `smoke` is a quick check; `full` is what variants are
/// compared by; `latency` measures only speed and memory.
public struct EvaluationSuite: Sendable {
    public struct TaskSpec: Sendable {
        public let name: String
        /// Path under the BIG-bench task directory.
        public let path: String
        public let limit: Int?

        public init(name: String, path: String, limit: Int?) {
            self.name = name
            self.path = path
            self.limit = limit
        }
    }

    public let name: String
    public var lossDocuments: Range<Int>
    public var context: Int
    public var tasks: [TaskSpec]
    public var latency: LatencyProbe?
    /// Whether to measure the held-out loss.
    public var measuresLoss = true

    /// BIG-bench multiple-choice tasks the base model scores measurably above chance on
    /// (measured with the full suite; see the closing note of the Evaluator issue).
    public static let taskPaths: [String: String] = [
        "general_knowledge": "general_knowledge/task.json",
        "movie_recommendation": "movie_recommendation/task.json",
        "social_iqa": "social_iqa/task.json",
        "epistemic_reasoning": "epistemic_reasoning/task.json",
        "goal_inference": "goal_step_wikihow/goal_inference/task.json",
        "step_inference": "goal_step_wikihow/step_inference/task.json",
        "winowhy": "winowhy/task.json",
        "physical_intuition": "physical_intuition/task.json",
        "cause_and_effect": "cause_and_effect/one_sentence/task.json",
    ]

    public static let defaultTasks = ["general_knowledge", "movie_recommendation", "goal_inference", "step_inference"]

    /// A task by one of the names above, by any BIG-bench task's directory name under
    /// benchmark_tasks (with its subtask, as in `logical_deduction/three_objects`), or by the
    /// path of a task file in the same JSON format (absolute, or starting with `.`).
    public static func taskSpec(_ task: String) throws -> (name: String, path: String) {
        if let known = taskPaths[task] { return (task, known) }
        if task.hasSuffix(".json") || task.hasPrefix("/") || task.hasPrefix(".") {
            let url = URL(fileURLWithPath: task).standardizedFileURL
            guard FileManager.default.fileExists(atPath: url.path) else { throw EvaluatorError.missingFile(url.path) }
            let name = url.lastPathComponent == "task.json" ? url.deletingLastPathComponent().lastPathComponent : url.deletingPathExtension().lastPathComponent
            return (name, url.path)
        }
        guard !task.isEmpty, task.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == "/" }),
              !task.hasPrefix("/"), !task.contains("//") else {
            throw EvaluatorError.unknownTask(task, known: taskPaths.keys.sorted())
        }
        return (task, task + "/task.json")
    }

    public static func named(_ name: String, tasks: [String]? = nil) throws -> EvaluationSuite {
        let chosen = try (tasks ?? defaultTasks).map(taskSpec)
        switch name {
        case "smoke":
            return EvaluationSuite(name: name, lossDocuments: XSumCorpus.testRange.lowerBound ..< XSumCorpus.testRange.lowerBound + 10,
                                   context: 512, tasks: chosen.map { TaskSpec(name: $0.name, path: $0.path, limit: 20) },
                                   latency: LatencyProbe(promptLengths: [128], decodeTokens: 16, repetitions: 3))
        case "full":
            return EvaluationSuite(name: name, lossDocuments: XSumCorpus.testRange, context: 512,
                                   tasks: chosen.map { TaskSpec(name: $0.name, path: $0.path, limit: 300) },
                                   latency: LatencyProbe())
        case "latency":
            // Latency and memory alone, in a minute: they need a quiet machine, which a long
            // quality evaluation beside other work does not get, so they can be re-measured
            // on their own (the laws take a model's newest latency record).
            var suite = EvaluationSuite(name: name, lossDocuments: 0 ..< 0, context: 512, tasks: [], latency: LatencyProbe())
            suite.measuresLoss = false
            return suite
        default:
            throw EvaluatorError.unknownTask("suite '\(name)'", known: ["smoke", "full", "latency"])
        }
    }
}
