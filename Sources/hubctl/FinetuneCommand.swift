import ArgumentParser
import Checkpoint
import Evaluator
import Foundation
import HubCore
import Training
import Transformer

/// Set by the first Ctrl-C; the training loop stops after the step in flight.
nonisolated(unsafe) private var interruptRequested: sig_atomic_t = 0

struct Finetune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Recover a compressed model's quality with a short fine-tune.",
        discussion: """
        Trains on the first D tokens of the fine-tuning corpus: 5.70M tokens of \
        English from BIG-bench files that set-up fetches and pins (xsum articles \
        64..<900, Wikipedia articles and evidence, reviews, conversations), disjoint \
        from the calibration text, the test articles and every evaluated task. The \
        documents are shuffled once by a fixed seed, so any D mixes the sources. \
        --corpus-source gem/xsum (repeatable) reads only the named sources' \
        documents, in the same order: fine-tuning on the test text's domain (news) \
        without its articles. The record lists the sources.

        Every weight trains with AdamW (warm-up, then cosine decay), or with \
        --lora-rank only low-rank adapters on the chosen projections, merged into \
        the weights at the end: either way the output is a plain checkpoint of the \
        parent's shape. finetune.json (schemas/finetune.schema.json) records the \
        parent's sha256, the settings and seed, the corpus sha256 and token range, \
        the loss curve and the wall time.

        --distill-from names a teacher (usually the parent the variant was cut \
        from): the loss becomes (1 − w)·CE + w·T²·KL(teacher ‖ student) at \
        temperature T, with the teacher's logits computed on the fly. With \
        --teacher-top-k K the teacher runs once over the run's tokens and its K \
        largest logits per position are kept in --teacher-cache (by default \
        $HUB_CACHE/teacher-logits), under a name made of the teacher's and the \
        tokens' sha256 and the temperature: every later run that distils the same \
        teacher on the same tokens (another variant, another method, LoRA or full) \
        reads them instead of running the teacher, and trains about as fast as plain \
        cross-entropy. The KL is then taken over K + 1 classes, the teacher's K \
        tokens and "any other token", whose teacher mass the cache also keeps: the \
        student is not pushed to drop the tail the temperature spreads mass onto.

        A checkpoint is written every --checkpoint-every steps to OUTPUT.checkpoint. \
        Ctrl-C stops after the step in flight and writes one (while the teacher \
        builds its top-k cache, after its batch in flight, keeping nothing: the \
        teacher's pass starts over on the next run); a run killed any other way \
        keeps the last. --resume continues from it and, at the same BLAS \
        threads, ends with the same weights as a run never stopped. The output \
        directory appears whole or not at all.

        Examples:
          hubctl finetune smollm2-w30 --tokens 50000 -o smollm2-w30-ft
          hubctl finetune smollm2-w30 --tokens 50000 --lora-rank 16 -o w30-lora
          hubctl finetune smollm2-w30 --tokens 50000 \\
            --distill-from smollm2/SmolLM2-135M-Instruct -o smollm2-w30-kd
          hubctl finetune smollm2-w30 --tokens 50000 -o smollm2-w30-ft --resume
        """
    )

    @Argument(help: "A model directory or namespace/name[@revision].") var model: String
    @Option(help: "Training tokens D.") var tokens: Int
    @Option(help: "Tokens per sequence.") var sequenceLength = 256
    @Option(help: "Sequences per micro-batch.") var batch = 4
    @Option(help: "Micro-batches per optimizer step.") var accumulation = 1
    @Option(help: "Peak learning rate.") var learningRate = 1e-4
    @Option(help: "Train LoRA adapters of this rank instead of every weight.") var loraRank: Int?
    @Option(help: "LoRA alpha (scale alpha/rank; default 2 × rank).") var loraAlpha: Double?
    @Option(help: "Projections that get adapters, comma-separated (default: all of \(LoRASettings.projections.joined(separator: ", "))).")
    var loraTargets: String?
    @Option(help: "Seed of LoRA's initial adapters.") var seed: UInt64 = 0
    @Option(help: "A teacher model to distil from (directory or namespace/name[@revision]).") var distillFrom: String?
    @Option(help: "Weight w of the distillation term, in [0, 1].") var distillWeight = 0.5
    @Option(help: "Distillation temperature T.") var temperature = 2.0
    @Option(help: "Distil from the teacher's K largest logits per position, computed once and cached (see above).") var teacherTopK: Int?
    @Option(help: "Directory of the teacher's cached top-k logits (default $HUB_CACHE/teacher-logits).") var teacherCache: String?
    @Option(help: "Read only this corpus source (repeat for several): \(FineTuneCorpus.sources.map(FineTuneCorpus.shortName).joined(separator: ", ")). Default: all.")
    var corpusSource: [String] = []
    @Option(name: .shortAndLong, help: "The directory to create.") var output: String
    @Option(help: "Steps between checkpoints.") var checkpointEvery = 25
    @Flag(help: "Continue the interrupted run whose checkpoint is in OUTPUT.checkpoint.") var resume = false
    @Option(help: "BLAS threads (default: all cores).") var threads: Int?
    @OptionGroup var data: DataDirectoryOption

    func run() throws {
        if let threads { BLASThreads.count = threads }
        var settings = FineTuneSettings(tokens: tokens)
        settings.sequenceLength = sequenceLength
        settings.batchSequences = batch
        settings.accumulation = accumulation
        settings.peakLearningRate = learningRate
        settings.seed = seed
        if let loraRank {
            settings.lora = try LoRASettings(rank: loraRank, alpha: loraAlpha,
                                             targets: (loraTargets ?? LoRASettings.projections.joined(separator: ",")).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        }
        let tuner = try FineTuner(settings: settings)
        let destination = URL(fileURLWithPath: output)
        let checkpointDirectory = URL(fileURLWithPath: output + ".checkpoint")
        guard !FileManager.default.fileExists(atPath: destination.path) else { throw ValidationFailure("\(output) already exists") }
        let hasCheckpoint = FileManager.default.fileExists(atPath: checkpointDirectory.path)
        if hasCheckpoint, !resume {
            throw ValidationFailure("\(checkpointDirectory.path) holds an interrupted run: add --resume to continue it, or delete it to start over")
        }
        if resume, !hasCheckpoint { throw ValidationFailure("nothing to resume: \(checkpointDirectory.path) does not exist") }

        let files = try ModelLocator.locate(model, data: data)
        var teacher: FineTuneJob.Teacher?
        if let distillFrom {
            let teacherFiles = try ModelLocator.locate(distillFrom, data: data)
            teacher = .init(config: teacherFiles.config, weights: teacherFiles.weights, weight: distillWeight, temperature: temperature,
                            topK: teacherTopK,
                            cacheDirectory: teacherCache.map { URL(fileURLWithPath: $0) } ?? ModelLocator.assetCache.appendingPathComponent("teacher-logits"))
        } else if teacherTopK != nil || teacherCache != nil {
            throw ValidationFailure("--teacher-top-k and --teacher-cache need --distill-from")
        }
        if let teacherTopK, teacherTopK < 1 { throw ValidationFailure("--teacher-top-k must be at least 1 (got \(teacherTopK))") }
        _ = try FineTuneCorpus.selection(corpusSource)  // an unknown source is refused before anything loads
        var job = FineTuneJob(settings: settings, model: ModelFiles(config: files.config, weights: files.weights, tokenizer: files.tokenizer,
                                                                    tokenizerConfig: files.tokenizerConfig),
                              teacher: teacher, bigbench: ModelLocator.assetCache.appendingPathComponent("bigbench"),
                              checkpointDirectory: checkpointDirectory, checkpointEvery: checkpointEvery)
        job.corpusSources = corpusSource.isEmpty ? nil : corpusSource

        signal(SIGINT) { _ in
            interruptRequested = 1
            signal(SIGINT, SIG_DFL)  // a second Ctrl-C stops at once
        }
        var start = Date()
        var firstTokens: Int?
        let record: FineTuneRecord
        do {
            let teacherStart = Date()
            record = try job.run(output: destination, shouldStop: { interruptRequested != 0 },
                                 teacherProgress: { done, total in
                                     let rate = Double(done * settings.sequenceLength) / max(Date().timeIntervalSince(teacherStart), 1e-9)
                                     let remaining = Double((total - done) * settings.sequenceLength) / max(rate, 1e-9)
                                     Output.bar(String(format: "teacher: top-%d logits, %.0f tok/s, ETA %.0f s", teacherTopK ?? 0, rate, remaining),
                                                done: done, total: total)
                                     // The training rate counts from here, not from the teacher's start.
                                     start = Date()
                                 },
                                 describe: { Output.progress("… \($0)") }) { step in
                let before = firstTokens ?? (step.tokens - settings.tokensPerStep)
                firstTokens = before
                let rate = Double(step.tokens - before) / max(Date().timeIntervalSince(start), 1e-9)
                let remaining = Double(tuner.tokensNeeded - step.tokens) / max(rate, 1e-9)
                Output.bar(String(format: "fine-tuning loss %.3f, %.0f tok/s, ETA %.0f s", step.loss, rate, remaining),
                           done: step.tokens, total: tuner.tokensNeeded)
            }
        } catch FineTuneError.interrupted(0, _) {
            Output.progress("\ninterrupted while the teacher computed its logits, before the first step; nothing was written."
                            + " The same command starts over.")
            throw ExitCode(130)
        } catch FineTuneError.interrupted(let step, _) {
            Output.progress("\ninterrupted after step \(step) of \(settings.steps); the checkpoint is in \(checkpointDirectory.path)."
                            + " Continue with the same command and --resume.")
            throw ExitCode(130)
        }
        print(String(format: "wrote %@: %d tokens in %d steps, loss %.3f → %.3f, %.0f s (%.0f tokens/s)", output, record.tokens, record.steps,
                     record.curve.first?.loss ?? 0, record.curve.last?.loss ?? 0, record.wallSeconds, Double(record.tokens) / record.wallSeconds))
    }
}

struct Corpus: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the fine-tuning corpus: its sources, size and sha256.",
        discussion: """
        Reads the corpus from the BIG-bench files set-up fetched, checks it against \
        its pinned sha256 and prints what each source contributes. --count-tokens \
        tokenizes all of it with the model's tokenizer (about a minute).

        Example:
          hubctl corpus --count-tokens
        """
    )

    @Flag(help: "Tokenize the whole corpus and print its size in tokens.") var countTokens = false
    @Flag(help: "Print {name, sha256, sources: [{source, documents, bytes}], tokens} as JSON.") var json = false
    @Option(help: "The model whose tokenizer counts tokens.") var model = "smollm2/SmolLM2-135M-Instruct"
    @OptionGroup var data: DataDirectoryOption

    func run() throws {
        let corpus = try FineTuneCorpus(bigbench: ModelLocator.assetCache.appendingPathComponent("bigbench"))
        if !json {
            print("\(FineTuneCorpus.name), sha256 \(corpus.sha256.hex) (matches its pin)")
            for (source, documents, bytes) in corpus.sizes {
                print("  " + source.padding(toLength: 38, withPad: " ", startingAt: 0) + String(format: "%6d documents  ", documents) + Output.bytes(bytes))
            }
        }
        var total: Int?
        if countTokens {
            let files = try ModelLocator.locate(model, data: data)
            let tokenizer = try BPETokenizer(huggingFaceJSON: files.tokenizer, tokenizerConfig: files.tokenizerConfig)
            total = corpus.documents.reduce(0) { $0 + tokenizer.encode($1 + "<|endoftext|>").count }
            if !json { print("  \(total!) tokens with \(files.label)'s tokenizer") }
        }
        if json {
            print(try Output.json(CorpusSummary(name: FineTuneCorpus.name, sha256: corpus.sha256.hex, tokens: total,
                                                sources: corpus.sizes.map { .init(source: $0.0, documents: $0.1, bytes: $0.2) })))
        }
    }
}

struct CorpusSummary: Encodable {
    struct Source: Encodable { let source: String, documents: Int, bytes: Int }
    let name: String
    let sha256: String
    let tokens: Int?
    let sources: [Source]
}
