import COpenBLAS
import Checkpoint
import Foundation
import HubCore
import Transformer

/// Calibration-based slicing in the manner of SliceGPT. RMSNorm scales are folded into the
/// linear layers that read the normalized stream (after which RMSNorm commutes with any
/// orthogonal rotation of the residual stream); the stream is rotated into the principal
/// components of its calibration activations, and the least-used directions are deleted:
/// every reading matrix's columns and every writing matrix's rows shrink from width d to k.
/// Norm weights become √(d/k), so that RMS over k dimensions matches RMS over d.
///
/// The ends of the stream depend on the head. An untied head is sliced with the embedding
/// (the stream is k wide from the embedding to the head). A tied head is kept whole, and so is
/// the embedding it shares: slicing them would untie them (folding the final norm makes the
/// head differ from the embedding), and on a small model with a large vocabulary the second
/// vocabulary matrix costs more than the slicing saves (SmolLM2-135M: 28M parameters, a fifth
/// of the model). Instead the first block reads the full stream and its attention writes into
/// the sliced basis through a shortcut Qᵀ [k, d], and the last block's MLP writes the full
/// stream back through a shortcut Q [d, k], so the final norm and the tied head see the
/// original basis.
///
/// `sequential` (slicegpt), as published: two bases per block, one for what its attention
/// reads and one for what its MLP reads, each the principal components of the stream *of the
/// model already sliced up to that point*, so every basis sees, and is fitted to, what the
/// deletions before it left. The residual crosses from one basis to the next through the
/// shortcuts Q_nextᵀ·Q_k [k, k] that the runtime carries (`self_attn.shortcut`,
/// `mlp.shortcut`); they cost 2k² parameters a block, so at a given ratio the stream is sliced
/// narrower than with one basis. `shared` (slicegpt-shared): one basis for the whole stream,
/// the principal components of every block input's activations in the base model together;
/// no shortcuts between blocks.
///
/// Why sequential, and why two bases: bases taken from the unsliced model, one per block (the
/// form this replaced), raised the loss by 91% at r = 0.1 (full suite) against shared slicing's
/// 18%. Fitted sequentially but still one per block (the attention writing into the basis of
/// its own input) it was worse still: +134% on the smoke suite, since what attention adds lies
/// outside the principal directions of what it read. Two sequential bases: +34% (smoke),
/// though their shortcuts narrow the stream to 438 where the shared basis keeps 499.
public struct SliceGPTSlicing: CompressionMethod {
    public enum Rotation: String, Sendable { case sequential, shared }

    public let rotation: Rotation

    public init(rotation: Rotation = .sequential) {
        self.rotation = rotation
    }

    public var name: String { rotation == .sequential ? "slicegpt" : "slicegpt-shared" }
    public var summary: String {
        rotation == .sequential
            ? "SliceGPT as published: each sublayer reads the stream in the principal components of the model sliced so far (shortcuts between bases), least-used directions deleted"
            : "SliceGPT with one rotation for the whole residual stream (no shortcuts)"
    }
    public let needsCalibration = true
    /// The shared basis is fitted to the base model's statistics; the sequential bases are
    /// fitted as the slicing goes, on the calibration sequences themselves.
    public var statisticsKinds: StatisticsKinds { rotation == .shared ? [.residualCovariance] : [] }
    public var readsStatistics: Bool { rotation == .shared }
    /// The stream sliced to one dimension; a tied embedding and head stay whole.
    public func smallestParameterCount(_ c: EditableCheckpoint) -> (parameters: Int, reason: String) {
        let layout = Layout(c, rotation: rotation)
        return (layout.parameterCount(c, width: 1),
                layout.keepsEnds ? "it keeps the tied embedding and head (\(c.embeddingParameterCount) parameters) whole and slices the residual stream to at least one dimension"
                                 : "it slices the residual stream to at least one dimension")
    }

    /// Calibration tokens by default. The principal bases of a 576-wide stream need many more
    /// samples than dimensions; SliceGPT uses about 2M tokens on 7B models, which would take
    /// hours here. All of the calibration articles (xsum 0..<64, about 27k tokens, 47 per
    /// dimension) take about a minute on two cores.
    public static let defaultCalibrationTokens = 32768

    public func compress(_ c: inout EditableCheckpoint, removing parameters: Int, context: CompressionContext) throws -> [String: JSONValue] {
        try Self.requireStandard(c)
        let d = c.layers[0].inputWidth
        let target = c.parameterCount - parameters
        let layout = Self.Layout(c, rotation: rotation)
        // The sliced size is quadratic in k (the shortcuts): the width nearest the target.
        let width = (1 ... d).min { abs(layout.parameterCount(c, width: $0) - target) < abs(layout.parameterCount(c, width: $1) - target) }!
        let kept: Double
        switch rotation {
        case .shared:
            guard let covariances = try context.statistics(for: name).residualCovariances else { throw CompressionError.calibrationMissing(method: name) }
            kept = try Self.slice(&c, to: width, covariances: covariances)
        case .sequential:
            let sequences = try context.probe(for: name).data.sequences
            kept = try Self.sliceSequentially(&c, to: width, calibration: sequences) { block, blocks in
                context.progress("slicing block \(block + 1) of \(blocks)")
            }
        }
        let shortcuts = c.tensors.filter { $0.key.hasSuffix(".shortcut.weight") }.reduce(0) { $0 + $1.value.values.count }
        return ["sliced_width": .number(Double(width)), "original_width": .number(Double(d)), "rotation": .string(rotation.rawValue),
                "ends": .string(layout.keepsEnds ? "kept: the tied embedding and head stay whole, the first and last blocks cross through shortcuts"
                                                 : "sliced: the embedding and the untied head are k wide"),
                "shortcut_parameters": .number(Double(shortcuts)),
                "variance_kept": .number((kept * 1e6).rounded() / 1e6)]
    }

    static func requireStandard(_ c: EditableCheckpoint) throws {
        guard let d = c.layers.first?.inputWidth,
              c.layers.allSatisfy({ $0.inputWidth == d && $0.attentionOutputWidth == d && $0.outputWidth == d
                  && !$0.attentionShortcut && !$0.mlpShortcut && $0.attentionHeads > 0 && $0.intermediateSize > 0 }) else {
            throw CompressionError.unsupportedModel("slicing needs every block to have attention, an MLP and the same residual width")
        }
    }

    /// Which basis the stream is in at each point: an index into the bases, or nil for the
    /// full, unrotated stream.
    struct Layout {
        struct Block { var input: Int?, middle: Int?, output: Int? }
        /// Whether the tied embedding and head stay whole (the stream is full width at both ends).
        let keepsEnds: Bool
        let blocks: [Block]
        /// The basis the embedding writes (nil: whole) and the head reads.
        let embedding: Int?, head: Int?

        /// Sequential: block l reads basis 2l, its MLP reads 2l + 1 and writes 2l + 2 (the
        /// next block's input). Shared: basis 0 everywhere.
        init(_ c: EditableCheckpoint, rotation: Rotation) {
            let count = c.layers.count
            keepsEnds = c.config.tieWordEmbeddings && c.tensors["lm_head.weight"] == nil
            func basis(_ index: Int) -> Int { rotation == .sequential ? index : 0 }
            var blocks = (0 ..< count).map { Block(input: basis(2 * $0), middle: basis(2 * $0 + 1), output: basis(2 * $0 + 2)) }
            if keepsEnds {
                // The first block reads the whole stream and its attention writes the sliced one;
                // the last block's MLP writes the whole stream back.
                blocks[0].input = nil
                blocks[count - 1].output = nil
            }
            self.blocks = blocks
            embedding = keepsEnds ? nil : basis(0)
            head = keepsEnds ? nil : basis(2 * count)
        }

        /// The sliced checkpoint's size at residual width `width`.
        func parameterCount(_ c: EditableCheckpoint, width k: Int) -> Int {
            let d = c.layers[0].inputWidth, vocabulary = c.config.vocabSize
            func w(_ basis: Int?) -> Int { basis == nil ? d : k }
            var total = keepsEnds ? vocabulary * d + d : 2 * vocabulary * k + k
            for (shape, block) in zip(c.layers, blocks) {
                let q = shape.attentionHeads * shape.headDim, kv = shape.keyValueHeads * shape.headDim
                total += (q + 2 * kv + 1) * w(block.input) + (q + 1 + 2 * shape.intermediateSize) * w(block.middle)
                    + shape.intermediateSize * w(block.output)
                if block.input != block.middle { total += w(block.input) * w(block.middle) }
                if block.middle != block.output { total += w(block.middle) * w(block.output) }
            }
            return total
        }
    }

    /// Folds the norms, rotates into the principal basis of all of `covariances` together (one
    /// per block input and one for the final residual, of the base model) and keeps `width`
    /// directions. Returns the fraction of the calibration variance the kept directions hold.
    /// With `width` equal to the model's width nothing is deleted and the function the model
    /// computes is unchanged.
    @discardableResult
    public static func slice(_ c: inout EditableCheckpoint, to width: Int, covariances: [[Double]]) throws -> Double {
        try requireStandard(c)
        let d = c.layers[0].inputWidth, blocks = c.layers.count
        precondition(covariances.count == blocks + 1 && covariances.allSatisfy { $0.count == d * d } && width >= 1 && width <= d)
        var total = [Double](repeating: 0, count: d * d)
        for covariance in covariances { for i in total.indices { total[i] += covariance[i] } }
        let (basis, fraction) = try principalBasis(total, dimension: d, keep: width)
        let layout = Layout(c, rotation: .shared)
        try foldNorms(&c, layout: layout)
        var rotation = Rotator(dimension: d, width: width)
        rotation.bases[0] = basis
        try rotation.apply(to: &c, layout: layout)
        return fraction
    }

    /// Slices as published: block by block, each basis the principal components of the
    /// stream that the model sliced so far computes on `calibration` (independent sequences,
    /// each from position 0). Returns the mean fraction of that variance the kept directions
    /// hold. With `width` equal to the model's width nothing is deleted and the function is
    /// unchanged. `progress` hears each block as it starts.
    @discardableResult
    public static func sliceSequentially(_ c: inout EditableCheckpoint, to width: Int, calibration: [[Int]],
                                         progress: (_ block: Int, _ blocks: Int) -> Void = { _, _ in }) throws -> Double {
        try requireStandard(c)
        let d = c.layers[0].inputWidth
        precondition(width >= 1 && width <= d)
        let chunks = Stream.chunks(calibration, tokensPerChunk: 2048)
        guard !chunks.isEmpty else { throw CompressionError.calibrationTooShort(tokens: 0, needed: 1) }
        // The calibration stream, in chunks of whole sequences (attention needs them whole),
        // each [rows, width of the stream where it stands].
        let embedding = try c.tensor("model.embed_tokens.weight")
        var stream = try chunks.map { chunk in
            var rows = [Float](repeating: 0, count: chunk.tokens.count * d)
            for (r, token) in chunk.tokens.enumerated() {
                guard token >= 0, token < embedding.rows else { throw CompressionError.unsupportedModel("calibration token \(token) is outside the vocabulary") }
                for j in 0 ..< d { rows[r * d + j] = embedding.values[token * d + j] }
            }
            return rows
        }
        // Only now, with the calibration read, does the checkpoint change.
        let layout = Layout(c, rotation: .sequential)
        try foldNorms(&c, layout: layout)
        var rotation = Rotator(dimension: d, width: width)
        var fractions: [Double] = []

        /// Fits `basis` to the stream (d wide, unrotated) and moves the stream into it.
        func fit(_ basis: Int) throws {
            var moments = [Double](repeating: 0, count: d * d)
            for rows in stream { rows.withUnsafeBufferPointer { ActivationStatistics.accumulateNormalizedMoments($0.baseAddress!, rows: $0.count / d, width: d, into: &moments) } }
            let (q, fraction) = try principalBasis(moments, dimension: d, keep: width)
            rotation.bases[basis] = q
            fractions.append(fraction)
            stream = stream.map { Self.rightMultiply(.init(shape: [$0.count / d, d], values: $0), q, width).values }
        }
        if let basis = layout.embedding { try fit(basis) }

        for (layer, block) in layout.blocks.enumerated() {
            progress(layer, layout.blocks.count)
            // Attention as sliced so far, writing the whole unrotated stream: the half-block
            // reads the stream in the block's input basis and adds o_proj's output to the
            // residual carried back to d wide by the input basis itself.
            let attention = try rotation.attentionHalf(of: c, layer: layer, reading: block.input)
            stream = try zip(chunks, stream).map { try attention.forwardResidual($1, sequenceLengths: $0.lengths) }
            try fit(block.middle!)
            let mlp = try rotation.mlpHalf(of: c, layer: layer, reading: block.middle!)
            stream = try zip(chunks, stream).map { try mlp.forwardResidual($1, sequenceLengths: $0.lengths) }
            if let output = block.output { try fit(output) }
        }
        try rotation.apply(to: &c, layout: layout)
        return fractions.reduce(0, +) / Double(max(fractions.count, 1))
    }

    /// Packed calibration chunks: whole sequences back to back.
    struct Stream {
        let tokens: [Int]
        let lengths: [Int]

        static func chunks(_ sequences: [[Int]], tokensPerChunk: Int) -> [Stream] {
            var chunks: [Stream] = [], tokens: [Int] = [], lengths: [Int] = []
            for sequence in sequences where !sequence.isEmpty {
                tokens += sequence
                lengths.append(sequence.count)
                if tokens.count >= tokensPerChunk {
                    chunks.append(Stream(tokens: tokens, lengths: lengths))
                    tokens = []
                    lengths = []
                }
            }
            if !tokens.isEmpty { chunks.append(Stream(tokens: tokens, lengths: lengths)) }
            return chunks
        }
    }

    /// Folds every RMSNorm scale into the matrices that read its output (the final norm's
    /// only where the head is sliced; a kept head reads the unrotated stream as before).
    static func foldNorms(_ c: inout EditableCheckpoint, layout: Layout) throws {
        if !layout.keepsEnds {
            var head = try c.tensors["lm_head.weight"] ?? c.tensor("model.embed_tokens.weight")
            scaleColumns(&head, try c.tensor("model.norm.weight").values)
            c.tensors["lm_head.weight"] = head
        }
        for layer in c.layers.indices {
            let p = EditableCheckpoint.prefix(layer)
            let inputNorm = try c.tensor(p + "input_layernorm.weight").values
            for name in ["self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"] {
                scaleColumns(&c.tensors[p + name]!, inputNorm)
            }
            let postNorm = try c.tensor(p + "post_attention_layernorm.weight").values
            for name in ["mlp.gate_proj.weight", "mlp.up_proj.weight"] { scaleColumns(&c.tensors[p + name]!, postNorm) }
        }
    }

    /// Rotates and slices folded weights into bases, by index (a nil basis is the whole
    /// unrotated stream, the identity). Readers of a stream in basis Q take W·Q_k, writers
    /// Q_kᵀ·W; where a block's input, middle and output bases differ, a shortcut Q_outᵀ·Q_in
    /// carries the residual across.
    struct Rotator {
        let d: Int, width: Int
        var bases: [Int: [Float]] = [:]

        init(dimension: Int, width: Int) {
            d = dimension
            self.width = width
        }

        func read(_ w: EditableCheckpoint.Tensor, _ basis: Int?) -> EditableCheckpoint.Tensor {
            basis.map { rightMultiply(w, bases[$0]!, width) } ?? w
        }
        func write(_ w: EditableCheckpoint.Tensor, _ basis: Int?) -> EditableCheckpoint.Tensor {
            basis.map { leftMultiplyTransposed(bases[$0]!, width, w) } ?? w
        }
        func shortcut(from source: Int?, to target: Int?) -> EditableCheckpoint.Tensor {
            write(read(.init(shape: [d, d], values: (0 ..< d * d).map { $0 / d == $0 % d ? 1 : 0 }), source), target)
        }
        /// A whole stream's norm has had its scale folded into the readers: ones.
        func norm(_ basis: Int?) -> EditableCheckpoint.Tensor {
            let k = basis == nil ? d : width
            return .init(shape: [k], values: [Float](repeating: Float((Double(d) / Double(k)).squareRoot()), count: k))
        }
        func widthOf(_ basis: Int?) -> Int { basis == nil ? d : width }

        func apply(to c: inout EditableCheckpoint, layout: Layout) throws {
            if let basis = layout.embedding {
                c.tensors["model.embed_tokens.weight"] = read(try c.tensor("model.embed_tokens.weight"), basis)
            }
            if let basis = layout.head {
                c.tensors["lm_head.weight"] = read(c.tensors["lm_head.weight"]!, basis)
                c.tensors["model.norm.weight"] = norm(basis)
            }
            for (layer, block) in zip(c.layers.indices, layout.blocks) {
                let p = EditableCheckpoint.prefix(layer)
                for name in ["self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"] {
                    c.tensors[p + name] = read(c.tensors[p + name]!, block.input)
                }
                for name in ["mlp.gate_proj.weight", "mlp.up_proj.weight"] { c.tensors[p + name] = read(c.tensors[p + name]!, block.middle) }
                c.tensors[p + "self_attn.o_proj.weight"] = write(c.tensors[p + "self_attn.o_proj.weight"]!, block.middle)
                c.tensors[p + "mlp.down_proj.weight"] = write(c.tensors[p + "mlp.down_proj.weight"]!, block.output)
                if block.input != block.middle {
                    c.tensors[p + "self_attn.shortcut.weight"] = shortcut(from: block.input, to: block.middle)
                    c.layers[layer].attentionShortcut = true
                }
                if block.middle != block.output {
                    c.tensors[p + "mlp.shortcut.weight"] = shortcut(from: block.middle, to: block.output)
                    c.layers[layer].mlpShortcut = true
                }
                c.tensors[p + "input_layernorm.weight"] = norm(block.input)
                c.tensors[p + "post_attention_layernorm.weight"] = norm(block.middle)
                c.layers[layer].inputWidth = widthOf(block.input)
                c.layers[layer].attentionOutputWidth = widthOf(block.middle)
                c.layers[layer].outputWidth = widthOf(block.output)
            }
            if !layout.keepsEnds { c.config.tieWordEmbeddings = false }
        }

        /// Block `layer`'s attention alone, reading the stream in basis `input` and writing the
        /// whole unrotated residual (d wide), as a one-block runtime model.
        func attentionHalf(of c: EditableCheckpoint, layer: Int, reading input: Int?) throws -> LlamaModel {
            let p = EditableCheckpoint.prefix(layer)
            var shape = c.layers[layer]
            shape.inputWidth = widthOf(input)
            shape.attentionOutputWidth = d
            shape.attentionShortcut = input != nil
            shape.intermediateSize = 0
            shape.outputWidth = d
            shape.mlpShortcut = false
            var tensors = ["model.layers.0.input_layernorm.weight": norm(input),
                           "model.layers.0.self_attn.o_proj.weight": try c.tensor(p + "self_attn.o_proj.weight")]
            for name in ["self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"] {
                tensors["model.layers.0." + name] = read(try c.tensor(p + name), input)
            }
            if input != nil { tensors["model.layers.0.self_attn.shortcut.weight"] = shortcut(from: input, to: nil) }
            return try oneBlockModel(c.config, shape: shape, tensors: tensors)
        }

        /// Block `layer`'s MLP alone, reading the stream in basis `middle` and writing the
        /// whole unrotated residual (d wide), as a one-block runtime model.
        func mlpHalf(of c: EditableCheckpoint, layer: Int, reading middle: Int) throws -> LlamaModel {
            let p = EditableCheckpoint.prefix(layer)
            var shape = c.layers[layer]
            shape.inputWidth = width
            shape.attentionHeads = 0
            shape.keyValueHeads = 0
            shape.attentionOutputWidth = width
            shape.attentionShortcut = false
            shape.outputWidth = d
            shape.mlpShortcut = true
            var tensors = ["model.layers.0.post_attention_layernorm.weight": norm(middle),
                           "model.layers.0.mlp.down_proj.weight": try c.tensor(p + "mlp.down_proj.weight"),
                           "model.layers.0.mlp.shortcut.weight": shortcut(from: middle, to: nil)]
            for name in ["mlp.gate_proj.weight", "mlp.up_proj.weight"] { tensors["model.layers.0." + name] = read(try c.tensor(p + name), middle) }
            return try oneBlockModel(c.config, shape: shape, tensors: tensors)
        }

        /// A runtime model of one block; its one-token vocabulary is never used, since the
        /// stream goes in and comes out through `forwardResidual`.
        private func oneBlockModel(_ config: LlamaConfig, shape: LayerShape, tensors: [String: EditableCheckpoint.Tensor]) throws -> LlamaModel {
            var config = config
            config.vocabSize = 1
            config.numHiddenLayers = 1
            config.hubLayers = [shape]
            config.tieWordEmbeddings = false
            var all = tensors.mapValues { ($0.shape, $0.values) }
            all["model.embed_tokens.weight"] = ([1, shape.inputWidth], [Float](repeating: 0, count: shape.inputWidth))
            all["lm_head.weight"] = ([1, shape.outputWidth], [Float](repeating: 0, count: shape.outputWidth))
            all["model.norm.weight"] = ([shape.outputWidth], [Float](repeating: 1, count: shape.outputWidth))
            try config.validate()
            return try LlamaModel(weights: ModelWeights(config: config, tensors: all))
        }
    }

    /// Eigenvectors of the covariance as columns of a row-major [d, d] matrix, largest
    /// eigenvalue first, and the fraction of the trace the first `keep` hold.
    static func principalBasis(_ covariance: [Double], dimension d: Int, keep: Int) throws -> ([Float], Double) {
        var a = covariance, eigenvalues = [Double](repeating: 0, count: d)
        var n = Int32(d), lda = Int32(d), info: Int32 = 0
        var lwork: Int32 = -1, liwork: Int32 = -1
        var workSize = 0.0, iworkSize: Int32 = 0
        dsyevd_("V", "U", &n, &a, &lda, &eigenvalues, &workSize, &lwork, &iworkSize, &liwork, &info)
        lwork = Int32(workSize); liwork = iworkSize
        var work = [Double](repeating: 0, count: Int(lwork)), iwork = [Int32](repeating: 0, count: Int(liwork))
        dsyevd_("V", "U", &n, &a, &lda, &eigenvalues, &work, &lwork, &iwork, &liwork, &info)
        guard info == 0 else { throw CompressionError.unsupportedModel("the eigensolver failed (LAPACK info \(info))") }
        // LAPACK returns ascending eigenvalues, eigenvector j contiguous at a[j·d ..< (j+1)·d].
        var basis = [Float](repeating: 0, count: d * d)
        for j in 0 ..< d {
            let source = d - 1 - j
            for i in 0 ..< d { basis[i * d + j] = Float(a[source * d + i]) }
        }
        let total = eigenvalues.reduce(0, +)
        let kept = eigenvalues.suffix(keep).reduce(0, +)
        return (basis, total > 0 ? kept / total : 1)
    }

    static func scaleColumns(_ t: inout EditableCheckpoint.Tensor, _ scale: [Float]) {
        for r in 0 ..< t.rows { for c in 0 ..< t.columns { t.values[r * t.columns + c] *= scale[c] } }
    }

    /// W [out, d] · Q[:, ..<k] → [out, k].
    static func rightMultiply(_ w: EditableCheckpoint.Tensor, _ basis: [Float], _ k: Int) -> EditableCheckpoint.Tensor {
        let d = w.columns
        var out = [Float](repeating: 0, count: w.rows * k)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(w.rows), Int32(k), Int32(d), 1,
                    w.values, Int32(d), basis, Int32(d), 0, &out, Int32(k))
        return .init(shape: [w.rows, k], values: out)
    }

    /// Q[:, ..<k]ᵀ · W [d, in] → [k, in].
    static func leftMultiplyTransposed(_ basis: [Float], _ k: Int, _ w: EditableCheckpoint.Tensor) -> EditableCheckpoint.Tensor {
        let d = w.rows
        var out = [Float](repeating: 0, count: k * w.columns)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(k), Int32(w.columns), Int32(d), 1,
                    basis, Int32(d), w.values, Int32(w.columns), 0, &out, Int32(w.columns))
        return .init(shape: [k, w.columns], values: out)
    }
}

