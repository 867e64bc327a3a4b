import COpenBLAS
import Checkpoint
import Foundation
import HubCore

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
/// `perBlock` (slicegpt), as published: each block reads the stream in the principal basis
/// Q_l of its own input, and its MLP writes into the next block's basis Q_{l+1}; the residual
/// crosses from one basis to the next through the shortcut Q_{l+1,k}ᵀ·Q_{l,k} [k, k] that the
/// runtime's `mlp_shortcut` carries. The shortcuts cost k² parameters a block, so at a given
/// ratio the stream is sliced narrower than with one basis. `shared` (slicegpt-shared): one
/// basis, the principal components of every position's activations together; no shortcuts
/// between blocks. Both take the bases from one calibration pass of the base model.
public struct SliceGPTSlicing: CompressionMethod {
    public enum Rotation: String, Sendable { case perBlock = "per-block", shared }

    public let rotation: Rotation

    public init(rotation: Rotation = .perBlock) {
        self.rotation = rotation
    }

    public var name: String { rotation == .perBlock ? "slicegpt" : "slicegpt-shared" }
    public var summary: String {
        rotation == .perBlock
            ? "SliceGPT: residual stream rotated into each block's principal components (shortcuts between blocks), least-used directions deleted"
            : "SliceGPT with one rotation for the whole residual stream (no shortcuts)"
    }
    public let needsCalibration = true
    public var statisticsKinds: StatisticsKinds { [.residualCovariance] }
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
        guard let covariances = try context.statistics(for: name).residualCovariances else { throw CompressionError.calibrationMissing(method: name) }
        try Self.requireStandard(c)
        let d = c.layers[0].inputWidth
        let target = c.parameterCount - parameters
        let layout = Self.Layout(c, rotation: rotation)
        // The sliced size is quadratic in k (the shortcuts): the width nearest the target.
        let width = (1 ... d).min { abs(layout.parameterCount(c, width: $0) - target) < abs(layout.parameterCount(c, width: $1) - target) }!
        let kept = try Self.slice(&c, to: width, covariances: covariances, rotation: rotation)
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

    /// Which basis the stream is in at each point: an index into the bases (one per block
    /// input and one for the final residual), or nil for the full, unrotated stream.
    struct Layout {
        struct Block { var input: Int?, middle: Int?, output: Int? }
        /// Whether the tied embedding and head stay whole (the stream is full width at both ends).
        let keepsEnds: Bool
        let blocks: [Block]
        /// The basis the embedding writes (nil: whole) and the head reads.
        let embedding: Int?, head: Int?

        init(_ c: EditableCheckpoint, rotation: Rotation) {
            let count = c.layers.count
            keepsEnds = c.config.tieWordEmbeddings && c.tensors["lm_head.weight"] == nil
            func basis(_ index: Int) -> Int { rotation == .perBlock ? index : 0 }
            var blocks = (0 ..< count).map { Block(input: basis($0), middle: basis($0), output: basis($0 + 1)) }
            if keepsEnds {
                // The first block's sublayers both write into the basis the second block reads.
                blocks[0] = Block(input: nil, middle: basis(1), output: basis(1))
                blocks[count - 1].output = nil
                if count == 1 { blocks[0].output = nil }
            }
            self.blocks = blocks
            embedding = keepsEnds ? nil : basis(0)
            head = keepsEnds ? nil : basis(count)
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

    /// Folds the norms, rotates into the principal bases of `covariances` (one per block
    /// input and one for the final residual) and keeps `width` directions. Returns the mean
    /// fraction of the calibration variance the kept directions hold. With `width` equal to
    /// the model's width nothing is deleted and the function the model computes is unchanged.
    @discardableResult
    public static func slice(_ c: inout EditableCheckpoint, to width: Int, covariances: [[Double]], rotation: Rotation) throws -> Double {
        try requireStandard(c)
        let d = c.layers[0].inputWidth, blocks = c.layers.count
        precondition(covariances.count == blocks + 1 && covariances.allSatisfy { $0.count == d * d } && width >= 1 && width <= d)
        let layout = Layout(c, rotation: rotation)
        var bases: [[Float]] = [], kept: [Double] = []
        switch rotation {
        case .shared:
            var total = [Double](repeating: 0, count: d * d)
            for covariance in covariances { for i in total.indices { total[i] += covariance[i] } }
            let (basis, fraction) = try principalBasis(total, dimension: d, keep: width)
            bases = [basis]
            kept = [fraction]
        case .perBlock:
            for covariance in covariances {
                let (basis, fraction) = try principalBasis(covariance, dimension: d, keep: width)
                bases.append(basis)
                kept.append(fraction)
            }
        }
        let used = Set(layout.blocks.flatMap { [$0.input, $0.middle, $0.output] }.compactMap { $0 })
        let meanKept = used.map { kept[$0] }.reduce(0, +) / Double(max(used.count, 1))

        // Fold every RMSNorm scale into the matrices that read its output (the final norm's
        // only where the head is sliced; a kept head reads the unrotated stream as before).
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

        // Rotate and slice. Readers of a stream in basis Q take W·Q_k, writers Q_kᵀ·W; where
        // a block's input, middle and output bases differ, a shortcut Q_outᵀ·Q_in carries the
        // residual across. A nil basis is the whole unrotated stream (identity).
        func read(_ w: EditableCheckpoint.Tensor, _ basis: Int?) -> EditableCheckpoint.Tensor {
            basis.map { rightMultiply(w, bases[$0], width) } ?? w
        }
        func write(_ w: EditableCheckpoint.Tensor, _ basis: Int?) -> EditableCheckpoint.Tensor {
            basis.map { leftMultiplyTransposed(bases[$0], width, w) } ?? w
        }
        let identity = EditableCheckpoint.Tensor(shape: [d, d], values: (0 ..< d * d).map { $0 / d == $0 % d ? 1 : 0 })
        func shortcut(from source: Int?, to target: Int?) -> EditableCheckpoint.Tensor {
            write(read(identity, source), target)
        }
        func norm(_ basis: Int?) -> EditableCheckpoint.Tensor {
            // A whole stream's norm has had its scale folded into the readers: ones.
            let k = basis == nil ? d : width
            return .init(shape: [k], values: [Float](repeating: Float((Double(d) / Double(k)).squareRoot()), count: k))
        }
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
            c.layers[layer].inputWidth = block.input == nil ? d : width
            c.layers[layer].attentionOutputWidth = block.middle == nil ? d : width
            c.layers[layer].outputWidth = block.output == nil ? d : width
        }
        if !layout.keepsEnds { c.config.tieWordEmbeddings = false }
        return meanKept
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

