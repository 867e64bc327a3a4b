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
}

/// Per-layer activation statistics over calibration data: the mean squared value of every
/// SwiGLU channel and every attention head's output, and how much each block changes the
/// residual stream (ShortGPT's block influence, 1 − cos(input, output)).
final class ActivationStatistics: ForwardObserver {
    var channelSquares: [[Double]]
    var headSquares: [[Double]]
    var influence: [Double]
    var tokens = 0
    private var inputs: [Int: [Float]] = [:]
    private let headDims: [Int]
    /// Σ x̂ x̂ᵀ over every block input and the final residual, each row scaled to unit RMS
    /// (what RMSNorm hands on); nil unless asked for. Row-major [width, width].
    var residualCovariance: [Double]?
    private let lastLayer: Int

    init(layers: [LayerShape], collectCovariance: Bool = false) {
        lastLayer = layers.count - 1
        residualCovariance = collectCovariance ? [Double](repeating: 0, count: (layers.first?.inputWidth ?? 0) * (layers.first?.inputWidth ?? 0)) : nil
        channelSquares = layers.map { [Double](repeating: 0, count: $0.intermediateSize) }
        headSquares = layers.map { [Double](repeating: 0, count: $0.attentionHeads) }
        influence = [Double](repeating: 0, count: layers.count)
        headDims = layers.map(\.headDim)
    }

    func blockInput(layer: Int, hidden: UnsafePointer<Float>, rows: Int, width: Int) {
        inputs[layer] = Array(UnsafeBufferPointer(start: hidden, count: rows * width))
        if layer == 0 { tokens += rows }
        accumulateCovariance(hidden, rows: rows, width: width)
    }

    private func accumulateCovariance(_ hidden: UnsafePointer<Float>, rows: Int, width: Int) {
        guard residualCovariance != nil, residualCovariance!.count == width * width else { return }
        var normalized = [Float](repeating: 0, count: rows * width)
        for r in 0 ..< rows {
            var sum: Float = 0
            for c in 0 ..< width { sum += hidden[r * width + c] * hidden[r * width + c] }
            let scale = 1 / max((sum / Float(width)).squareRoot(), 1e-12)
            for c in 0 ..< width { normalized[r * width + c] = hidden[r * width + c] * scale }
        }
        var product = [Float](repeating: 0, count: width * width)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(width), Int32(width), Int32(rows), 1,
                    normalized, Int32(width), normalized, Int32(width), 0, &product, Int32(width))
        for i in 0 ..< width * width { residualCovariance![i] += Double(product[i]) }
    }

    func blockOutput(layer: Int, hidden: UnsafePointer<Float>, rows: Int, width: Int) {
        if layer == lastLayer { accumulateCovariance(hidden, rows: rows, width: width) }
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
    }

    func mlpActivation(layer: Int, values: UnsafePointer<Float>, rows: Int, width: Int) {
        for r in 0 ..< rows {
            for c in 0 ..< width { let v = Double(values[r * width + c]); channelSquares[layer][c] += v * v }
        }
    }
}
