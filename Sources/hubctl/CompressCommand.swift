import ArgumentParser
import Checkpoint
import Compressor
import Evaluator
import Foundation
import Transformer

struct Compress: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compress a model to a ratio with one structured method.",
        discussion: """
        The ratio is r = 1 − params(variant) / params(base) over all parameters; \
        the recipe (recipe.json in the output) also states it over non-embedding \
        parameters, with what the method measured and chose, the calibration \
        text's sha256 and token count, the base checkpoint's sha256 and the code \
        version. The output directory appears complete or not at all.

        Methods (the first of each family is recommended; the others are \
        baselines):
        \(Compress.methodList)

        Depth methods take what whole blocks cannot reach with width-prune-global \
        on the depth-pruned model; the recipe lists each removed block with its \
        measured effect.

        Calibration defaults to BBC articles 0..<64 of BIG-bench gem/xsum (never \
        used by the evaluator's test split): 8,192 tokens, or all of them (about \
        27k) for slicegpt; --calibration takes a UTF-8 text file instead. \
        --self-calibration reads no text at all: the model samples its own \
        calibration (4,096 tokens by default, seeded, so a run is repeatable), \
        which makes width-prune a data-free method that beats the weight-only \
        ones (prunenet, weight-prune) by far on SmolLM2.

        Example:
          hubctl compress smollm2/SmolLM2-135M-Instruct --method width-prune \\
            --ratio 0.3 -o smollm2-w30
        """
    )

    /// Every registered method with its summary, wrapped to fit 80 columns.
    static var methodList: String {
        let indent = String(repeating: " ", count: 25)
        return CompressionMethods.all.map { method in
            var lines: [String] = [], line = "  " + method.name.padding(toLength: 23, withPad: " ", startingAt: 0)
            for word in method.summary.split(separator: " ") {
                if line.count + word.count + 1 > 80, line.count > indent.count { lines.append(line); line = indent }
                line += (line.hasSuffix(" ") ? "" : " ") + word
            }
            return (lines + [line]).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    @Argument(help: "A model directory or namespace/name[@revision].") var model: String
    @Option(help: "A method named above.") var method: String
    @Option(help: "Compression ratio, strictly between 0 and 1.") var ratio: Double
    @Option(help: "A UTF-8 text file of calibration text.") var calibration: String?
    @Option(help: "Calibration tokens to use (default 8192; 32768 for slicegpt; 4096 with --self-calibration).") var calibrationTokens: Int?
    @Flag(help: "Calibrate on text the model samples from itself (sequences of 256 tokens, fixed seeds): no text is read, so a calibrated method becomes data-free.")
    var selfCalibration = false
    @Option(name: .shortAndLong, help: "The directory to create.") var output: String
    @Option(help: "BLAS threads (default: all cores).") var threads: Int?
    @OptionGroup var data: DataDirectoryOption

    func run() throws {
        if let threads { BLASThreads.count = threads }
        let chosen = try CompressionMethods.named(method)
        _ = try CompressionRatio(requested: ratio)
        let files = try ModelLocator.locate(model, data: data)
        var calibrationData: CalibrationData?
        if selfCalibration, calibration != nil { throw ValidationFailure("--self-calibration and --calibration exclude each other: the first reads no text") }
        if selfCalibration, !chosen.needsCalibration { throw ValidationFailure("\(chosen.name) reads no calibration; --self-calibration applies to calibrated methods") }
        if selfCalibration {
            let tokenizer = try BPETokenizer(huggingFaceJSON: files.tokenizer, tokenizerConfig: files.tokenizerConfig)
            let tokens = calibrationTokens ?? CalibrationData.defaultSampledTokens
            guard tokens >= 256 else { throw ValidationFailure("--calibration-tokens \(tokens) is less than one sampled sequence (256)") }
            Output.progress("… sampling \(tokens) calibration tokens from the model itself")
            calibrationData = try CalibrationData.sampled(config: files.config, weights: files.weights, tokenizer: tokenizer, tokens: tokens,
                                                          progress: { Output.bar("sampled tokens", done: $0, total: $1) })
        } else if chosen.needsCalibration {
            let tokenizer = try BPETokenizer(huggingFaceJSON: files.tokenizer, tokenizerConfig: files.tokenizerConfig)
            let (text, source) = try calibrationText()
            let tokens = calibrationTokens ?? (chosen is SliceGPTSlicing ? SliceGPTSlicing.defaultCalibrationTokens : 8192)
            calibrationData = try CalibrationData(text: text, source: source, tokenizer: tokenizer, maxTokens: tokens,
                                                  minimumTokens: min(1024, tokens))
        }
        var companions: [String: URL] = ["tokenizer.json": files.tokenizer]
        if let config = files.tokenizerConfig { companions["tokenizer_config.json"] = config }
        let recipe = try Compressor(method: chosen).compress(
            config: files.config, weights: files.weights, companions: companions, ratio: ratio, calibration: calibrationData,
            output: URL(fileURLWithPath: output), progress: { Output.progress("… \($0)") },
            calibrationProgress: { Output.bar("calibration tokens", done: $0, total: $1) })
        print(String(format: "wrote %@: %@ at r = %.4f (requested %.2f), non-embedding r = %.4f, %d → %d parameters",
                     output, recipe.method, recipe.achievedRatio, recipe.requestedRatio, recipe.achievedNonEmbeddingRatio,
                     recipe.baseParameters, recipe.variantParameters))
    }

    func calibrationText() throws -> (String, String) {
        if let calibration {
            guard let text = try? String(contentsOfFile: calibration, encoding: .utf8) else {
                throw ValidationFailure("cannot read \(calibration) as UTF-8 text")
            }
            return (text, URL(fileURLWithPath: calibration).lastPathComponent)
        }
        return try XSumCorpus.calibrationText(bigbench: ModelLocator.assetCache.appendingPathComponent("bigbench"))
    }
}
