import Checkpoint
import Transformer
import COpenBLAS
import Foundation
import HubCore

/// Token sequences a calibration-based method runs through the model, with the identity of
/// the text they came from (recorded in the recipe).
public struct CalibrationData: Sendable {
    public let sequences: [[Int]]
    public let sha256: SHA256Digest
    public let source: String

    public var tokenCount: Int { sequences.reduce(0) { $0 + $1.count } }

    /// The text cut into sequences of `sequenceLength` tokens, at most `maxTokens` in all;
    /// fewer than `minimumTokens` is an error.
    public init(text: String, source: String, tokenizer: BPETokenizer, sequenceLength: Int = 256,
                maxTokens: Int = 8192, minimumTokens: Int = 1024) throws {
        let tokens = tokenizer.encode(text)
        guard tokens.count >= minimumTokens else { throw CompressionError.calibrationTooShort(tokens: tokens.count, needed: minimumTokens) }
        let used = Array(tokens.prefix(maxTokens))
        sequences = stride(from: 0, to: used.count, by: sequenceLength).map { Array(used[$0 ..< min($0 + sequenceLength, used.count)]) }
            .filter { $0.count >= 2 }
        sha256 = SHA256Digest.of(Data(text.utf8))
        self.source = source
    }

    /// Text the model writes itself, so that a calibrated method needs no data at all (a
    /// data-free compression): `sequences` samples of `length` tokens, each started from
    /// `startToken` (the tokenizer's BOS) and drawn at temperature 1 with no nucleus cut, so
    /// that they follow the model's own distribution; sample i uses seed `seed + i`. The
    /// digest is over the token ids, so a recipe pins exactly what was read.
    ///
    /// Why this works where weight-only scores fail: the channels that matter most in
    /// SmolLM2's first and last blocks have small weights and large activations, which only a
    /// forward pass shows; the model's own samples drive those activations as real text does.
    public static func sampled(from model: LlamaModel, startToken: Int, sequences: Int = 16, length: Int = 256, seed: UInt64 = 0,
                               progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> CalibrationData {
        guard sequences > 0, length >= 2 else { throw CompressionError.calibrationTooShort(tokens: sequences * length, needed: 2) }
        var samples: [[Int]] = []
        for i in 0 ..< sequences {
            let result = try model.generate(prompt: [startToken], options: GenerationOptions(
                maxNewTokens: length - 1, sampler: Sampler(temperature: 1, topP: 1, seed: seed &+ UInt64(i))))
            samples.append([startToken] + result.tokens)
            progress((i + 1) * length, sequences * length)
        }
        var bytes = Data()
        for id in samples.joined() { withUnsafeBytes(of: UInt32(id).littleEndian) { bytes.append(contentsOf: $0) } }
        return CalibrationData(sequences: samples, sha256: SHA256Digest.of(bytes),
                               source: "model-sampled: \(sequences) sequences of \(length) tokens from token \(startToken), temperature 1, seed \(seed)")
    }

    /// Sampled calibration by default: 4,096 tokens (16 samples), about a minute and a half
    /// of decoding on two cores; width-prune-global on them is within 2 points of loss of
    /// the text-calibrated variant at r = 0.1 on SmolLM2.
    public static let defaultSampledTokens = 4096

    /// `tokens` (whole samples of 256) sampled from the checkpoint at `config` and `weights`,
    /// each started from the tokenizer's BOS.
    public static func sampled(config: URL, weights: URL, tokenizer: BPETokenizer, tokens: Int = defaultSampledTokens,
                               progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> CalibrationData {
        guard tokens >= 256 else { throw CompressionError.calibrationTooShort(tokens: tokens, needed: 256) }
        let model = try LlamaModel(weights: ModelWeights(config: LlamaConfig.load(from: config), safetensors: SafetensorsFile(path: weights.path)))
        return try sampled(from: model, startToken: tokenizer.bosTokenID ?? tokenizer.eosTokenID ?? 0, sequences: tokens / 256, progress: progress)
    }

    init(sequences: [[Int]], sha256: SHA256Digest, source: String) {
        self.sequences = sequences
        self.sha256 = sha256
        self.source = source
    }
}

/// Per-layer activation statistics over calibration data: the mean squared value of every
/// SwiGLU channel and every attention head's output, how much each block changes the
/// residual stream (ShortGPT's block influence, 1 − cos(input, output)), and on request the
/// residual covariance and the second moments of what `down_proj` and `o_proj` read.
final class ActivationStatistics: ForwardObserver {
    var channelSquares: [[Double]]
    var headSquares: [[Double]]
    var influence: [Double]
    var tokens = 0
    private var inputs: [Int: [Float]] = [:]
    private let headDims: [Int]
    /// Σ x̂ x̂ᵀ at every block's input and at the final residual (layers + 1 positions), each
    /// row scaled to unit RMS (what RMSNorm hands on); nil unless asked for. Row-major [width, width].
    var residualCovariances: [[Double]]?
    /// Σ a aᵀ of the SwiGLU activations and of the heads' outputs, per block; nil unless asked for.
    var mlpMoments: [[Double]]?
    var attentionMoments: [[Double]]?
    private let lastLayer: Int

    init(layers: [LayerShape], collect: StatisticsKinds = []) {
        lastLayer = layers.count - 1
        let width = layers.first?.inputWidth ?? 0
        residualCovariances = collect.contains(.residualCovariance)
            ? [[Double]](repeating: [Double](repeating: 0, count: width * width), count: layers.count + 1) : nil
        if collect.contains(.projectionInputs) {
            mlpMoments = layers.map { [Double](repeating: 0, count: $0.intermediateSize * $0.intermediateSize) }
            attentionMoments = layers.map { let q = $0.attentionHeads * $0.headDim; return [Double](repeating: 0, count: q * q) }
        }
        channelSquares = layers.map { [Double](repeating: 0, count: $0.intermediateSize) }
        headSquares = layers.map { [Double](repeating: 0, count: $0.attentionHeads) }
        influence = [Double](repeating: 0, count: layers.count)
        headDims = layers.map(\.headDim)
    }

    func snapshot() -> ActivationStatisticsSnapshot {
        let n = Double(max(tokens, 1))
        return ActivationStatisticsSnapshot(
            channelRMS: channelSquares.map { $0.map { ($0 / n).squareRoot() } },
            headRMS: headSquares.map { $0.map { ($0 / n).squareRoot() } },
            blockInfluence: influence.map { $0 / n }, tokens: tokens,
            residualCovariances: residualCovariances,
            mlpInputMoments: mlpMoments?.map { $0.map { $0 / n } },
            attentionInputMoments: attentionMoments?.map { $0.map { $0 / n } })
    }

    func blockInput(layer: Int, hidden: UnsafePointer<Float>, rows: Int, width: Int) {
        inputs[layer] = Array(UnsafeBufferPointer(start: hidden, count: rows * width))
        if layer == 0 { tokens += rows }
        if residualCovariances != nil { accumulateCovariance(hidden, rows: rows, width: width, position: layer) }
    }

    private func accumulateCovariance(_ hidden: UnsafePointer<Float>, rows: Int, width: Int, position: Int) {
        guard residualCovariances?[position].count == width * width else { return }
        Self.accumulateNormalizedMoments(hidden, rows: rows, width: width, into: &residualCovariances![position])
    }

    /// moments += x̂ᵀx̂ for x [rows, width] with each row scaled to unit RMS: the covariance
    /// of what RMSNorm hands on, every token weighted alike.
    static func accumulateNormalizedMoments(_ hidden: UnsafePointer<Float>, rows: Int, width: Int, into moments: inout [Double]) {
        var normalized = [Float](repeating: 0, count: rows * width)
        for r in 0 ..< rows {
            var sum: Float = 0
            for c in 0 ..< width { sum += hidden[r * width + c] * hidden[r * width + c] }
            let scale = 1 / max((sum / Float(width)).squareRoot(), 1e-12)
            for c in 0 ..< width { normalized[r * width + c] = hidden[r * width + c] * scale }
        }
        normalized.withUnsafeBufferPointer { accumulateMoments($0.baseAddress!, rows: rows, width: width, into: &moments) }
    }

    /// moments += xᵀx for x [rows, width].
    static func accumulateMoments(_ x: UnsafePointer<Float>, rows: Int, width: Int, into moments: inout [Double]) {
        var product = [Float](repeating: 0, count: width * width)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(width), Int32(width), Int32(rows), 1,
                    x, Int32(width), x, Int32(width), 0, &product, Int32(width))
        for i in 0 ..< width * width { moments[i] += Double(product[i]) }
    }

    func blockOutput(layer: Int, hidden: UnsafePointer<Float>, rows: Int, width: Int) {
        if layer == lastLayer, residualCovariances != nil { accumulateCovariance(hidden, rows: rows, width: width, position: layer + 1) }
        guard let input = inputs.removeValue(forKey: layer), input.count == rows * width else { return }
        for r in 0 ..< rows {
            var dot = 0.0, a = 0.0, b = 0.0
            for c in 0 ..< width {
                let x = Double(input[r * width + c]), y = Double(hidden[r * width + c])
                dot += x * y; a += x * x; b += y * y
            }
            influence[layer] += 1 - dot / max((a * b).squareRoot(), 1e-30)
        }
    }

    func attentionOutput(layer: Int, values: UnsafePointer<Float>, rows: Int, width: Int) {
        let d = headDims[layer]
        for r in 0 ..< rows {
            for h in 0 ..< width / d {
                var sum = 0.0
                for j in 0 ..< d { let v = Double(values[r * width + h * d + j]); sum += v * v }
                headSquares[layer][h] += sum
            }
        }
        if attentionMoments != nil { Self.accumulateMoments(values, rows: rows, width: width, into: &attentionMoments![layer]) }
    }

    func mlpActivation(layer: Int, values: UnsafePointer<Float>, rows: Int, width: Int) {
        for r in 0 ..< rows {
            for c in 0 ..< width { let v = Double(values[r * width + c]); channelSquares[layer][c] += v * v }
        }
        if mlpMoments != nil { Self.accumulateMoments(values, rows: rows, width: width, into: &mlpMoments![layer]) }
    }
}
