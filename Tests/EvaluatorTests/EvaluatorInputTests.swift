import Foundation
import HubTestSupport
import Testing
@testable import Evaluator

@Suite("Evaluator inputs")
struct EvaluatorInputTests {
    func writeTask(_ object: [String: Any], in directory: TemporaryDirectory) throws -> URL {
        let url = directory.path("task.json")
        try JSONSerialization.data(withJSONObject: object).write(to: url)
        return url
    }

    @Test("tasks are formatted with their own prefixes, BIG-bench's defaults elsewhere; ties all count as correct")
    func formatting() throws {
        let directory = try TemporaryDirectory()
        let url = try writeTask([
            "task_prefix": "Answer.", "example_output_prefix": "\nanswer: ",
            "examples": [
                ["input": "2+2?", "target_scores": ["4": 1, "5": 0, "four": 1]],
                ["input": "Sky?", "target_scores": ["blue": 1, "green": 0]],
            ],
        ], in: directory)
        let task = try BigBenchTask(name: "t", file: url)
        #expect(task.examples[0].context == "Answer.\nQ: 2+2?\nanswer: ")
        #expect(task.examples[0].choices == ["4", "5", "four"])
        #expect(task.examples[0].correct == [0, 2])
        #expect(abs(task.chance - (2.0 / 3 + 1.0 / 2) / 2) < 1e-12)
        let listed = try BigBenchTask(name: "t", file: url, listChoices: true)
        #expect(listed.examples[1].context == "Answer.\nQ: Sky?\n  choice: blue\n  choice: green\nanswer: ")
        #expect(try BigBenchTask(name: "t", file: url, limit: 1).examples.count == 1)
    }

    @Test("acc, acc_norm and their standard errors")
    func scoring() throws {
        let directory = try TemporaryDirectory()
        let url = try writeTask(["examples": [
            ["input": "a", "target_scores": ["x": 1, "yyyyyy": 0]],
            ["input": "b", "target_scores": ["x": 0, "yyyyyy": 1]],
            ["input": "c", "target_scores": ["x": 1, "yyyyyy": 0]],
        ]], in: directory)
        let task = try BigBenchTask(name: "t", file: url)
        // Summed: x wins every time (right, wrong, right). Per byte, "yyyyyy" wins every time
        // (−0.5 vs −2, −1 vs −2, −0.5 vs −2): wrong, right, wrong.
        let result = MultipleChoiceAccuracy.score(task: task, likelihoods: [[-2, -3], [-2, -6], [-2, -3]])
        #expect(abs(result.accuracy - 2.0 / 3) < 1e-12)
        #expect(abs(result.accuracyStandardError - (1.0 / 3).squareRoot() / 3.0.squareRoot()) < 1e-12)
        #expect(abs(result.normalizedAccuracy - 1.0 / 3) < 1e-12)
        // Sample variance of [0, 1, 0] is 1/3, so the standard error is √(1/3 / 3) = 1/3.
        #expect(abs(result.normalizedAccuracyStandardError - 1.0 / 3) < 1e-12)
        #expect(result.chance == 0.5)
    }

    @Test("bad inputs are refused with errors that say what is wrong")
    func badInputs() throws {
        let directory = try TemporaryDirectory()
        #expect(throws: EvaluatorError.missingFile(directory.path("nope.json").path)) {
            try BigBenchTask(name: "t", file: directory.path("nope.json"))
        }
        let generative = try writeTask(["examples": [["input": "summarize", "target": "x"]]], in: directory)
        #expect(throws: EvaluatorError.self) { try BigBenchTask(name: "t", file: generative) }
        let empty = try writeTask(["examples": []], in: directory)
        #expect(throws: EvaluatorError.invalidTask(path: empty.path, reason: "no examples")) { try BigBenchTask(name: "t", file: empty) }
        // Any BIG-bench directory name is accepted here (a missing one fails when extracted);
        // a name that could not be one, or a task file that is not there, is refused at once.
        #expect(throws: EvaluatorError.self) { try EvaluationSuite.named("smoke", tasks: ["no such task!"]) }
        #expect(throws: EvaluatorError.missingFile(directory.path("absent.json").path)) {
            try EvaluationSuite.named("smoke", tasks: [directory.path("absent.json").path])
        }
        #expect(throws: EvaluatorError.self) { try EvaluationSuite.named("huge") }
        let corpus = try writeTask(["examples": [["input": ""]]], in: directory)
        #expect(throws: EvaluatorError.emptyCorpus(corpus.path)) { try XSumCorpus.articles(in: corpus, range: 0 ..< 1) }
    }

    @Test("an empty corpus is an error, not a number")
    func emptyCorpusLoss() throws {
        let tokenizer = try Checkpoint.BPETokenizer(gguf: .init(path: Assets.modelGGUF().path))
        #expect(throws: EvaluatorError.self) { try HeldOutLoss().windows(of: [], tokenizer: tokenizer) }
        #expect(throws: EvaluatorError.self) { try HeldOutLoss().windows(of: ["", ""], tokenizer: tokenizer) }
    }
}

import Checkpoint
