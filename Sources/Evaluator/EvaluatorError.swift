public enum EvaluatorError: Error, Equatable, CustomStringConvertible {
    case missingFile(String)
    case invalidTask(path: String, reason: String)
    case emptyCorpus(String)
    case unknownTask(String, known: [String])
    case modelDidNotLoad(path: String, reason: String)

    public var description: String {
        switch self {
        case .missingFile(let path): "\(path) does not exist (run scripts/fetch-assets.sh to install the task data)"
        case .invalidTask(let path, let reason): "\(path): not a usable BIG-bench multiple-choice task: \(reason)"
        case .emptyCorpus(let what): "the held-out corpus \(what) has no text to score"
        case .unknownTask(let name, let known):
            known.isEmpty ? "BIG-bench has no task file '\(name)' (name a directory under bigbench/benchmark_tasks, with its subtask if it has them, or give a task.json path)"
                : "unknown task '\(name)' (known: \(known.joined(separator: ", ")))"
        case .modelDidNotLoad(let path, let reason): "the model at \(path) did not load: \(reason)"
        }
    }
}
