import Evaluator
import Foundation
import HubTestSupport
import Testing

@Suite("Any BIG-bench task, by name or by path")
struct AnyTaskTests {
    @Test("a task outside the known nine is extracted from the verified sdist, atomically, and loads; a missing one is named")
    func extractFromSdist() throws {
        let directory = try TemporaryDirectory()
        let sdist = BigBenchSdist(archive: try Assets.bigbench("../downloads/bigbench-1.0.0.tar.gz"))
        let spec = try EvaluationSuite.taskSpec("logical_deduction/three_objects")
        #expect(spec.path == "logical_deduction/three_objects/task.json")
        try sdist.extract(spec.path, into: directory.url)
        let task = try BigBenchTask(name: spec.name, file: directory.url.appendingPathComponent(spec.path))
        #expect(task.examples.count == 300 && task.examples.allSatisfy { $0.choices.count == 3 })
        #expect(try directory.contents() == ["logical_deduction"])
        #expect(throws: EvaluatorError.unknownTask("no_such_task/task.json", known: [])) {
            try sdist.extract("no_such_task/task.json", into: directory.url)
        }
        #expect(throws: EvaluatorError.self) { try EvaluationSuite.taskSpec("../etc") }
        #expect(throws: EvaluatorError.self) { try sdist.extract("../x/task.json", into: directory.url) }
        // The known names keep their curated subtasks.
        #expect(try EvaluationSuite.taskSpec("goal_inference").path == "goal_step_wikihow/goal_inference/task.json")
    }

    @Test("a user's own task file works by path; a file that is not multiple choice is refused with the reason")
    func ownTaskFile() throws {
        let directory = try TemporaryDirectory()
        let file = directory.path("capitals.json")
        try Data("""
            {"name": "capitals", "examples": [
              {"input": "The capital of France is", "target_scores": {"Paris": 1, "Rome": 0}},
              {"input": "The capital of Italy is", "target_scores": {"Paris": 0, "Rome": 1}}]}
            """.utf8).write(to: file)
        let spec = try EvaluationSuite.taskSpec(file.path)
        #expect(spec.name == "capitals" && spec.path == file.path)
        let suite = try EvaluationSuite.named("smoke", tasks: [file.path, "general_knowledge"])
        #expect(suite.tasks.map(\.name) == ["capitals", "general_knowledge"])
        #expect(try BigBenchTask(name: spec.name, file: URL(fileURLWithPath: spec.path)).examples.count == 2)
        let generative = directory.path("generative.json")
        try Data(#"{"examples": [{"input": "2 + 2 =", "target": "4"}]}"#.utf8).write(to: generative)
        #expect(throws: EvaluatorError.invalidTask(path: generative.path, reason: "example 0 lacks input or target_scores")) {
            try BigBenchTask(name: "generative", file: generative)
        }
        #expect(throws: EvaluatorError.missingFile(directory.path("absent.json").path)) {
            try EvaluationSuite.taskSpec(directory.path("absent.json").path)
        }
    }
}
