import COpenBLAS
import Checkpoint
import Foundation

/// A LLaMA-family decoder over `ModelWeights`: token embedding, blocks of RMSNorm → grouped-
/// query attention with rotary positions → RMSNorm → SwiGLU MLP (each with its residual, and
/// a shortcut projection where a compressed block changes the residual width), final RMSNorm,
/// LM head. One forward pass handles any number of new tokens: a prompt (GEMMs) or one token
/// (GEMVs), attending to what the KV cache holds.
public final class LlamaModel: @unchecked Sendable {
    public let weights: ModelWeights
    public var config: LlamaConfig { weights.config }
    private let rotary: [Int: RotaryEmbedding]
    private let epsilon: Float

    public init(weights: ModelWeights) throws {
        self.weights = weights
        rotary = try RotaryEmbedding.tables(for: weights.config)
        epsilon = Float(weights.config.rmsNormEps)
    }

    public convenience init(directory: URL) throws {
        try self.init(weights: ModelWeights(directory: directory))
    }

    /// Query rows per block of causal attention.
    public static let attentionBlockRows = 128

    public func makeCache(capacity: Int) -> KVCache { KVCache(weights: weights, capacity: capacity) }

    /// Runs `tokens` at the positions after what `cache` holds, appends their keys and values,
    /// and returns the final hidden states (after the final norm) of the last `outputRows`
    /// tokens as a [outputRows, finalWidth] buffer.
    public func forward(_ tokens: [Int], cache: KVCache, outputRows: Int = 1) throws -> FloatBuffer {
        guard !tokens.isEmpty else { throw RuntimeError.emptyInput }
        guard cache.length + tokens.count <= cache.capacity else {
            throw RuntimeError.contextOverflow(needed: cache.length + tokens.count, limit: cache.capacity)
        }
        let hidden = try run(segments: [Segment(start: 0, count: tokens.count, position: cache.length)], tokens: tokens, cache: cache)
        cache.advance(by: tokens.count)
        let rows = min(outputRows, tokens.count)
        let width = config.finalWidth
        let output = FloatBuffer(count: rows * width, zeroed: false)
        Kernels.rmsNorm(hidden.pointer + (tokens.count - rows) * width, rows: rows, width: width, weight: weights.finalNorm,
                        epsilon: epsilon, into: output.pointer)
        return output
    }

    /// Logits [rows, vocabulary] of final hidden states [rows, finalWidth].
    public func logits(_ hidden: FloatBuffer, rows: Int) -> FloatBuffer {
        let head = weights.head
        let output = FloatBuffer(count: rows * head.rows, zeroed: false)
        Kernels.linear(hidden.pointer, rows: rows, ldx: head.columns, head, output.pointer, ldy: head.rows)
        return output
    }

    /// Independent sequences packed into one pass (each starts at position 0, none sees the
    /// others): the batched path for scoring. Returns final hidden states for every token,
    /// sequences back to back.
    public func forwardPacked(_ sequences: [[Int]], observer: ForwardObserver? = nil) throws -> FloatBuffer {
        var segments: [Segment] = []
        var start = 0
        for sequence in sequences {
            guard !sequence.isEmpty else { throw RuntimeError.emptyInput }
            guard sequence.count <= config.maxPositionEmbeddings else {
                throw RuntimeError.contextOverflow(needed: sequence.count, limit: config.maxPositionEmbeddings)
            }
            segments.append(Segment(start: start, count: sequence.count, position: 0))
            start += sequence.count
        }
        let tokens = sequences.flatMap { $0 }
        let hidden = try run(segments: segments, tokens: tokens, cache: nil, observer: observer)
        let width = config.finalWidth
        let output = FloatBuffer(count: tokens.count * width, zeroed: false)
        Kernels.rmsNorm(hidden.pointer, rows: tokens.count, width: width, weight: weights.finalNorm, epsilon: epsilon, into: output.pointer)
        return output
    }

    /// Rows [start, start+count) of the batch are one sequence's tokens at positions
    /// position, position+1, …
    struct Segment {
        let start: Int
        let count: Int
        let position: Int
    }

    /// Runs the blocks over residual-stream rows given directly, not looked up from tokens:
    /// independent sequences packed back to back, each from position 0, [rows, embedding
    /// width] in, [rows, finalWidth] out, before the final norm. What a compression method
    /// that rebuilds a model one block at a time runs on its calibration activations
    /// (sequential SliceGPT runs each half-block alone as a one-block model).
    public func forwardResidual(_ input: [Float], sequenceLengths: [Int]) throws -> [Float] {
        let rows = sequenceLengths.reduce(0, +), width = config.embeddingWidth
        guard sequenceLengths.allSatisfy({ $0 > 0 }), rows > 0 else { throw RuntimeError.emptyInput }
        guard input.count == rows * width else {
            throw RuntimeError.shapeMismatch(tensor: "residual input", expected: [rows, width], found: [input.count])
        }
        var segments: [Segment] = [], start = 0
        for length in sequenceLengths {
            guard length <= config.maxPositionEmbeddings else { throw RuntimeError.contextOverflow(needed: length, limit: config.maxPositionEmbeddings) }
            segments.append(Segment(start: start, count: length, position: 0))
            start += length
        }
        let x = FloatBuffer(count: rows * maxResidualWidth, zeroed: false)
        input.withUnsafeBufferPointer { x.pointer.update(from: $0.baseAddress!, count: input.count) }
        let output = runBlocks(x, rows: rows, segments: segments, cache: nil)
        return Array(UnsafeBufferPointer(start: output.pointer, count: rows * config.finalWidth))
    }

    /// The widest the residual stream gets anywhere in the model.
    private var maxResidualWidth: Int {
        config.layerShapes.reduce(config.embeddingWidth) { max($0, $1.inputWidth, $1.attentionOutputWidth, $1.outputWidth) }
    }

    private func run(segments: [Segment], tokens: [Int], cache: KVCache?, observer: ForwardObserver? = nil) throws -> FloatBuffer {
        let x = FloatBuffer(count: tokens.count * maxResidualWidth, zeroed: false)
        let embedding = weights.embedding
        for (r, token) in tokens.enumerated() {
            guard token >= 0, token < embedding.rows else { throw RuntimeError.tokenOutOfRange(token: token, vocabularySize: embedding.rows) }
            embedding.copyRow(token, into: x.pointer + r * embedding.columns)
        }
        return runBlocks(x, rows: tokens.count, segments: segments, cache: cache, observer: observer)
    }

    /// Every block over the residual rows in `input` (a buffer as wide as the widest stream);
    /// returns the buffer holding the last block's output.
    private func runBlocks(_ input: FloatBuffer, rows: Int, segments: [Segment], cache: KVCache?, observer: ForwardObserver? = nil) -> FloatBuffer {
        let maxWidth = maxResidualWidth
        var x = input
        var next = FloatBuffer(count: rows * maxWidth, zeroed: false)
        let normed = FloatBuffer(count: rows * maxWidth, zeroed: false)
        // Scratch for every block, sized for the widest, allocated once per pass: fresh
        // multi-megabyte buffers per layer would cost page faults on every block.
        let shapes = config.layerShapes
        let maxInner = shapes.map(\.intermediateSize).max() ?? 0
        let maxQuery = shapes.map { $0.attentionHeads * $0.headDim }.max() ?? 0
        let maxKeyValue = shapes.map { $0.keyValueHeads * $0.headDim }.max() ?? 0
        let gated = FloatBuffer(count: rows * maxInner, zeroed: false)
        let upped = FloatBuffer(count: rows * maxInner, zeroed: false)
        let workspace = AttentionWorkspace(
            queries: FloatBuffer(count: rows * maxQuery, zeroed: false),
            output: FloatBuffer(count: rows * maxQuery, zeroed: false),
            keys: cache == nil ? FloatBuffer(count: rows * maxKeyValue, zeroed: false) : nil,
            values: cache == nil ? FloatBuffer(count: rows * maxKeyValue, zeroed: false) : nil)

        for (layer, block) in weights.blocks.enumerated() {
            let shape = block.shape
            observer?.blockInput(layer: layer, hidden: x.pointer, rows: rows, width: shape.inputWidth)
            if let q = block.q, let k = block.k, let v = block.v, let o = block.o, let norm = block.inputNorm {
                Kernels.rmsNorm(x.pointer, rows: rows, width: shape.inputWidth, weight: norm, epsilon: epsilon, into: normed.pointer)
                let attended = attention(normed.pointer, rows: rows, block: block, q: q, k: k, v: v, layer: layer,
                                         segments: segments, cache: cache, workspace: workspace)
                observer?.attentionOutput(layer: layer, values: attended.pointer, rows: rows, width: o.columns)
                // residual' = shortcut(residual) + o_proj(attention)
                if let shortcut = block.attentionShortcut {
                    Kernels.linear(x.pointer, rows: rows, ldx: shape.inputWidth, shortcut, next.pointer, ldy: shape.attentionOutputWidth)
                    Kernels.linear(attended.pointer, rows: rows, ldx: o.columns, o, next.pointer, ldy: shape.attentionOutputWidth, accumulate: true)
                    swap(&x, &next)
                } else {
                    Kernels.linear(attended.pointer, rows: rows, ldx: o.columns, o, x.pointer, ldy: shape.attentionOutputWidth, accumulate: true)
                }
            } else if let shortcut = block.attentionShortcut {
                Kernels.linear(x.pointer, rows: rows, ldx: shape.inputWidth, shortcut, next.pointer, ldy: shape.attentionOutputWidth)
                swap(&x, &next)
            }

            let width = shape.attentionOutputWidth
            if let gate = block.gate, let up = block.up, let down = block.down, let norm = block.postAttentionNorm {
                Kernels.rmsNorm(x.pointer, rows: rows, width: width, weight: norm, epsilon: epsilon, into: normed.pointer)
                let inner = shape.intermediateSize
                Kernels.linear(normed.pointer, rows: rows, ldx: width, gate, gated.pointer, ldy: inner)
                Kernels.linear(normed.pointer, rows: rows, ldx: width, up, upped.pointer, ldy: inner)
                Parallel.rows(rows, cost: rows * inner) { r in
                    Kernels.swiglu(gated.pointer + r * inner, upped.pointer + r * inner, count: inner)
                }
                observer?.mlpActivation(layer: layer, values: gated.pointer, rows: rows, width: inner)
                if let shortcut = block.mlpShortcut {
                    Kernels.linear(x.pointer, rows: rows, ldx: width, shortcut, next.pointer, ldy: shape.outputWidth)
                    Kernels.linear(gated.pointer, rows: rows, ldx: inner, down, next.pointer, ldy: shape.outputWidth, accumulate: true)
                    swap(&x, &next)
                } else {
                    Kernels.linear(gated.pointer, rows: rows, ldx: inner, down, x.pointer, ldy: shape.outputWidth, accumulate: true)
                }
            } else if let shortcut = block.mlpShortcut {
                Kernels.linear(x.pointer, rows: rows, ldx: width, shortcut, next.pointer, ldy: shape.outputWidth)
                swap(&x, &next)
            }
            observer?.blockOutput(layer: layer, hidden: x.pointer, rows: rows, width: shape.outputWidth)
        }
        return x
    }

    /// Buffers the attention of every block reuses within one pass.
    struct AttentionWorkspace {
        let queries: FloatBuffer
        let output: FloatBuffer
        /// Keys and values of the pass when there is no cache to write them into.
        let keys: FloatBuffer?
        let values: FloatBuffer?
    }

    /// Grouped-query attention of `rows` normed inputs; returns the heads' outputs side by side
    /// [rows, heads × headDim], ready for o_proj.
    private func attention(_ input: UnsafePointer<Float>, rows: Int, block: BlockWeights, q: Matrix, k: Matrix, v: Matrix,
                           layer: Int, segments: [Segment], cache: KVCache?, workspace: AttentionWorkspace) -> FloatBuffer {
        let shape = block.shape
        let heads = shape.attentionHeads, kvHeads = shape.keyValueHeads, headDim = shape.headDim
        let qWidth = heads * headDim, kvWidth = kvHeads * headDim
        let queries = workspace.queries
        Kernels.linear(input, rows: rows, ldx: shape.inputWidth, q, queries.pointer, ldy: qWidth)

        // New keys and values go straight into the cache rows they will occupy (or a scratch
        // buffer when there is no cache).
        let keyBase = cache?.keys[layer]!.pointer ?? workspace.keys!.pointer
        let valueBase = cache?.values[layer]!.pointer ?? workspace.values!.pointer
        let firstRow = cache?.length ?? 0
        Kernels.linear(input, rows: rows, ldx: shape.inputWidth, k, keyBase + firstRow * kvWidth, ldy: kvWidth)
        Kernels.linear(input, rows: rows, ldx: shape.inputWidth, v, valueBase + firstRow * kvWidth, ldy: kvWidth)
        let rope = rotary[headDim]!
        for segment in segments {
            for i in 0 ..< segment.count {
                let row = segment.start + i
                rope.apply(queries.pointer + row * qWidth, heads: heads, position: segment.position + i)
                rope.apply(keyBase + (firstRow + row) * kvWidth, heads: kvHeads, position: segment.position + i)
            }
        }
        let output = workspace.output
        let scale = 1 / Float(headDim).squareRoot()
        let group = heads / kvHeads
        for segment in segments {
            // Keys visible to this segment: with a cache, everything up to its last new token;
            // without, the segment's own rows.
            let keyStart = cache == nil ? segment.start : 0
            let keyCount = cache == nil ? segment.count : firstRow + segment.count
            let scores = FloatBuffer(count: min(segment.count, Self.attentionBlockRows) * keyCount, zeroed: false)
            for h in 0 ..< heads {
                let g = h / group
                let qh = queries.pointer + segment.start * qWidth + h * headDim
                let kh = keyBase + keyStart * kvWidth + g * headDim
                let vh = valueBase + keyStart * kvWidth + g * headDim
                let oh = output.pointer + segment.start * qWidth + h * headDim
                if segment.count == 1 {
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(keyCount), Int32(headDim), scale, kh, Int32(kvWidth), qh, 1, 0, scores.pointer, 1)
                    Kernels.softmax(scores.pointer, count: keyCount)
                    cblas_sgemv(CblasRowMajor, CblasTrans, Int32(keyCount), Int32(headDim), 1, vh, Int32(kvWidth), scores.pointer, 1, 0, oh, 1)
                    continue
                }
                // Causal attention in blocks of query rows: a block needs only the keys up to
                // its last query, so the masked upper triangle is (mostly) never computed.
                let offset = keyCount - segment.count
                for blockStart in stride(from: 0, to: segment.count, by: Self.attentionBlockRows) {
                    let blockRows = min(Self.attentionBlockRows, segment.count - blockStart)
                    let blockKeys = offset + blockStart + blockRows
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(blockRows), Int32(blockKeys), Int32(headDim), scale,
                                qh + blockStart * qWidth, Int32(qWidth), kh, Int32(kvWidth), 0, scores.pointer, Int32(blockKeys))
                    Parallel.rows(blockRows, cost: blockRows * blockKeys) { i in
                        let row = scores.pointer + i * blockKeys
                        let visible = offset + blockStart + i + 1
                        Kernels.softmax(row, count: visible)
                        if visible < blockKeys { (row + visible).update(repeating: 0, count: blockKeys - visible) }
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(blockRows), Int32(headDim), Int32(blockKeys), 1,
                                scores.pointer, Int32(blockKeys), vh, Int32(kvWidth), 0, oh + blockStart * qWidth, Int32(qWidth))
                }
            }
        }
        return output
    }
}
