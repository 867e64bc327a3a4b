import Checkpoint
import Evaluator
import Foundation
import HubCore
import HubTestSupport
import Testing
import Transformer
@testable import Training

@Suite("Fine-tuning corpus")
struct FineTuneCorpusTests {
    @Test("the corpus matches its pin, holds over 20 MB of text, and shares nothing with the calibration or test articles or an evaluated task")
    func pinnedAndDisjoint() throws {
        let bigbench = Assets.cacheDirectory.appendingPathComponent("bigbench")
        let corpus = try FineTuneCorpus(bigbench: bigbench)
        #expect(corpus.sha256.hex == FineTuneCorpus.pinnedSHA256)
        #expect(corpus.sizes.reduce(0) { $0 + $1.bytes } > 20_000_000)
        #expect(corpus.sizes.allSatisfy { $0.documents > 500 }, "\(corpus.sizes)")

        let documents = Set(corpus.documents)
        let xsum = try Assets.bigbench("gem/xsum/task.json")
        for article in try XSumCorpus.articles(in: xsum, range: XSumCorpus.testRange) + XSumCorpus.articles(in: xsum, range: 0 ..< 64) {
            #expect(!documents.contains(article))
        }
        #expect(documents.contains(try XSumCorpus.articles(in: xsum, range: 64 ..< 65)[0]))
        let evaluated = Set(EvaluationSuite.taskPaths.values)
        #expect(FineTuneCorpus.sources.allSatisfy { !evaluated.contains($0) })
    }

    @Test("a run restricted to some sources reads only their documents, in the corpus's shuffled order")
    func sourcesSelected() throws {
        let corpus = try FineTuneCorpus(bigbench: Assets.cacheDirectory.appendingPathComponent("bigbench"))
        let tokenizer = try BPETokenizer(huggingFaceJSON: ConvertedModel.directory().appendingPathComponent("tokenizer.json"))
        let news = zip(corpus.documents, corpus.documentSources).filter { $0.1 == 0 }.map(\.0)
        let xsum = try Assets.bigbench("gem/xsum/task.json")
        #expect(Set(news) == Set(try XSumCorpus.articles(in: xsum, range: 64 ..< 900)))
        // The whole corpus starts with some other source; the news-only stream with its first article.
        #expect(corpus.documentSources.prefix(20).contains { $0 != 0 })
        let stream = try corpus.tokens(3000, tokenizer: tokenizer, sources: ["gem/xsum"])
        let reference = news.prefix(30).flatMap { tokenizer.encode($0 + "<|endoftext|>") }
        #expect(reference.count >= 3000 && stream == Array(reference.prefix(3000)))
        // Naming every source, by short name or task path, is the whole stream.
        #expect(try corpus.tokens(800, tokenizer: tokenizer, sources: FineTuneCorpus.sources) == corpus.tokens(800, tokenizer: tokenizer))
        #expect(try FineTuneCorpus.selection(["topical_chat", "gem/xsum/task.json"]) == ["gem/xsum", "topical_chat"])
        #expect(throws: FineTuneError.self) { try FineTuneCorpus.selection(["xsum"]) }
    }

    @Test("a changed source file is refused by its sha256, naming the fix")
    func mismatchRefused() throws {
        let directory = try TemporaryDirectory()
        for path in FineTuneCorpus.sources {
            let destination = directory.url.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: try Assets.bigbench(path), to: destination)
        }
        // Drop the last example of one file: still valid JSON, one document fewer.
        let file = directory.url.appendingPathComponent("multiemo/all_text_en/task.json")
        var root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any])
        root["examples"] = Array((root["examples"] as! [Any]).dropLast())
        try JSONSerialization.data(withJSONObject: root).write(to: file)
        do {
            _ = try FineTuneCorpus(bigbench: directory.url)
            Issue.record("a changed corpus was accepted")
        } catch let error as FineTuneError {
            guard case .corpusMismatch = error else { Issue.record("wrong error: \(error)"); return }
            #expect("\(error)".contains("run scripts/fetch-assets.sh"))
        }
    }
}

/// `hubctl finetune` as its own process, as a user runs it: killed with SIGKILL between
/// checkpoints and resumed, and fed bad input.
@Suite("hubctl finetune", .serialized)
struct FineTuneCommandTests {
    /// A tiny model with the real tokenizer (so the real corpus tokenizes into its vocabulary).
    static func tinyModel(in directory: URL) throws -> URL {
        let config = try LlamaConfig(vocabSize: 49152, hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 2, numAttentionHeads: 2,
                                     numKeyValueHeads: 1, maxPositionEmbeddings: 64, rmsNormEps: 1e-5, ropeTheta: 10000,
                                     tieWordEmbeddings: true)
        let model = directory.appendingPathComponent("tiny")
        try TinyCheckpoint(random: config, seed: 5).write(to: model)
        try FileManager.default.copyItem(at: ConvertedModel.directory().appendingPathComponent("tokenizer.json"),
                                         to: model.appendingPathComponent("tokenizer.json"))
        return model
    }

    struct Finished { let status: Int32; let errors: String }

    static func start(_ arguments: [String]) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = try HubctlBinary.url()
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return (process, errors)
    }

    static func run(_ arguments: [String]) throws -> Finished {
        let (process, errors) = try start(arguments)
        let text = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Finished(status: process.terminationStatus, errors: String(decoding: text, as: UTF8.self))
    }

    static func arguments(_ model: URL, output: URL) -> [String] {
        ["finetune", model.path, "--tokens", "3072", "--sequence-length", "32", "--batch", "2", "--checkpoint-every", "3",
         "--threads", "1", "--learning-rate", "1e-2", "-o", output.path]
    }

    @Test("SIGKILL mid-run, then --resume: the same weights and curve as a run never stopped")
    func killAndResume() throws {
        let directory = try TemporaryDirectory()
        let model = try Self.tinyModel(in: directory.url)
        let straight = directory.url.appendingPathComponent("straight")
        let first = try Self.run(Self.arguments(model, output: straight))
        #expect(first.status == 0, "\(first.errors)")

        let killed = directory.url.appendingPathComponent("killed")
        let checkpoint = URL(fileURLWithPath: killed.path + ".checkpoint")
        let (process, errors) = try Self.start(Self.arguments(model, output: killed))
        errors.fileHandleForReading.readabilityHandler = { _ = $0.availableData }
        // Kill it once a checkpoint past the first is on disk, in the middle of later steps.
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, process.isRunning {
            if let latest = try? String(contentsOf: checkpoint.appendingPathComponent("latest"), encoding: .utf8), latest >= "step-000009" { break }
            usleep(5_000)
        }
        let wasRunning = process.isRunning
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        errors.fileHandleForReading.readabilityHandler = nil
        try #require(wasRunning, "the run finished before it could be killed")
        #expect(!FileManager.default.fileExists(atPath: killed.path))

        let resumed = try Self.run(Self.arguments(model, output: killed) + ["--resume"])
        #expect(resumed.status == 0, "\(resumed.errors)")
        #expect(try Data(contentsOf: killed.appendingPathComponent("model.safetensors"))
            == Data(contentsOf: straight.appendingPathComponent("model.safetensors")))
        let curves = try [straight, killed].map { directory in
            let record = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("finetune.json"))) as! [String: Any]
            return try JSONSerialization.data(withJSONObject: record["curve"]!, options: .sortedKeys)
        }
        #expect(curves[0] == curves[1])
        #expect(!FileManager.default.fileExists(atPath: checkpoint.path), "the checkpoint is removed once the output is in place")
    }

    @Test("--teacher-top-k computes the teacher's logits once: a second run on the same tokens reads the cache, and the record says top_k")
    func teacherCacheShared() throws {
        let directory = try TemporaryDirectory()
        let model = try Self.tinyModel(in: directory.url)
        let cache = directory.url.appendingPathComponent("teacher-logits")
        var records: [[String: Any]] = []
        for (n, lora) in [[], ["--lora-rank", "2"]].enumerated() {
            let output = directory.url.appendingPathComponent("out\(n)")
            let result = try Self.run(Self.arguments(model, output: output) + lora
                                      + ["--distill-from", model.path, "--teacher-top-k", "8", "--teacher-cache", cache.path])
            #expect(result.status == 0, "\(result.errors)")
            #expect(result.errors.contains(n == 0 ? "computing its top 8 logits" : "top 8 logits of"), "\(result.errors)")
            // The teacher's pass has a progress bar of its own (its last line stays in a log).
            #expect(result.errors.contains("teacher: top-8 logits") == (n == 0), "\(result.errors)")
            let record = try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("finetune.json"))) as! [String: Any]
            let validator = try JSONSchemaValidator(schemaAt: Assets.repositoryRoot.appendingPathComponent("schemas/finetune.schema.json"))
            #expect(validator.violations(of: record) == [])
            records.append(record)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache.path).count == 1)
        #expect(records.allSatisfy { ($0["distillation"] as? [String: Any])?["top_k"] as? Int == 8 })
        let refused = try Self.run(Self.arguments(model, output: directory.url.appendingPathComponent("out9")) + ["--teacher-top-k", "8"])
        #expect(refused.status != 0 && refused.errors.contains("need --distill-from"))
    }

    @Test("--corpus-source: the run reads only news, and its record lists the source and validates against the schema")
    func newsOnly() throws {
        let directory = try TemporaryDirectory()
        let model = try Self.tinyModel(in: directory.url)
        let output = directory.url.appendingPathComponent("news")
        let result = try Self.run(Self.arguments(model, output: output) + ["--corpus-source", "gem/xsum"])
        #expect(result.status == 0 && result.errors.contains("(only gem/xsum)"), "\(result.errors)")
        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: output.appendingPathComponent("finetune.json"))) as! [String: Any]
        let validator = try JSONSchemaValidator(schemaAt: Assets.repositoryRoot.appendingPathComponent("schemas/finetune.schema.json"))
        #expect(validator.violations(of: record) == [])
        #expect((record["corpus"] as? [String: Any])?["sources"] as? [String] == ["gem/xsum"])
    }

    @Test("bad input is refused with a clear error and writes nothing")
    func refusals() throws {
        let directory = try TemporaryDirectory()
        let model = try Self.tinyModel(in: directory.url)
        let output = directory.url.appendingPathComponent("out")
        func refused(_ arguments: [String], saying text: String) throws {
            let result = try Self.run(arguments)
            #expect(result.status != 0)
            #expect(result.errors.contains(text), "\(result.errors)")
            #expect(!FileManager.default.fileExists(atPath: output.path))
        }
        try refused(["finetune", model.path, "--tokens", "0", "-o", output.path], saying: "tokens must be positive")
        try refused(["finetune", model.path, "--tokens", "100000000", "-o", output.path], saying: "the fine-tuning corpus has")
        try refused(Self.arguments(model, output: output) + ["--resume"], saying: "nothing to resume")
        try refused(Self.arguments(model, output: output) + ["--corpus-source", "wikipedia"],
                    saying: "unknown corpus source \"wikipedia\"; the sources are gem/xsum, paragraph_segmentation")
        try refused(["finetune", model.path, "--tokens", "3000000", "--corpus-source", "gem/xsum", "-o", output.path],
                    saying: "the fine-tuning corpus (only gem/xsum) has at most")
        let broken = directory.url.appendingPathComponent("broken")
        try FileManager.default.createDirectory(at: broken, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: model.appendingPathComponent("tokenizer.json"), to: broken.appendingPathComponent("tokenizer.json"))
        try Data("{\"vocab_size\": 3}".utf8).write(to: broken.appendingPathComponent("config.json"))
        try refused(["finetune", broken.path, "--tokens", "64", "-o", output.path], saying: "config.json: missing field 'hidden_size'")
        try FileManager.default.removeItem(at: broken.appendingPathComponent("config.json"))
        try FileManager.default.copyItem(at: model.appendingPathComponent("config.json"), to: broken.appendingPathComponent("config.json"))
        try Data("not safetensors".utf8).write(to: broken.appendingPathComponent("model.safetensors"))
        try refused(["finetune", broken.path, "--tokens", "64", "-o", output.path], saying: "model.safetensors")
        #expect(!FileManager.default.fileExists(atPath: output.path + ".checkpoint"))

        // A checkpoint left by a run with other settings is neither used nor overwritten.
        let checkpoint = URL(fileURLWithPath: output.path + ".checkpoint")
        let (process, errors) = try Self.start(Self.arguments(model, output: output))
        errors.fileHandleForReading.readabilityHandler = { _ = $0.availableData }
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, process.isRunning, !FileManager.default.fileExists(atPath: checkpoint.appendingPathComponent("latest").path) {
            usleep(5_000)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        errors.fileHandleForReading.readabilityHandler = nil
        let latest = try String(contentsOf: checkpoint.appendingPathComponent("latest"), encoding: .utf8)
        try refused(Self.arguments(model, output: output), saying: "add --resume to continue it")
        try refused(Self.arguments(model, output: output).map { $0 == "1e-2" ? "2e-2" : $0 } + ["--resume"], saying: "belongs to another run: its settings")
        try refused(Self.arguments(model, output: output) + ["--corpus-source", "gem/xsum", "--resume"], saying: "belongs to another run: its corpus_sources")
        #expect(try String(contentsOf: checkpoint.appendingPathComponent("latest"), encoding: .utf8) == latest)
    }
}
