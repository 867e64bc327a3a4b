import COpenBLAS
import Checkpoint
import Foundation
import HubCore

/// Calibration-based slicing in the manner of SliceGPT. RMSNorm scales are folded into the
/// linear layers that read the normalized stream (after which RMSNorm commutes with any
/// orthogonal rotation of the residual stream); the stream is rotated into the principal
/// components of its calibration activations, and the least-used directions are deleted:
/// the embedding, every reading matrix's columns, every writing matrix's rows and the head
/// all shrink from width d to k. The head is untied (folding the final norm makes it differ
/// from the embedding). Norm weights become √(d/k), so that RMS over k dimensions matches
/// RMS over d.
///
/// One rotation serves the whole residual stream (PCA of every block's normalized input and
/// the final residual together); SliceGPT's per-block rotations would need shortcut matrices,
/// which the runtime supports (`hub_layers`) but this method does not use yet.
public struct SliceGPTSlicing: CompressionMethod {
    public let name = "slicegpt"
    public let needsCalibration = true
    public var needsResidualCovariance: Bool { true }
    public var slicesEmbedding: Bool { true }

    public init() {}

    public func compress(_ c: inout EditableCheckpoint, removing parameters: Int, statistics: ActivationStatisticsSnapshot?) throws -> [String: JSONValue] {
        guard let covariance = statistics?.residualCovariance else { throw CompressionError.calibrationMissing(method: name) }
        try Self.requireStandard(c)
        let d = c.layers[0].inputWidth
        let target = c.parameterCount - parameters
        let perWidth = Self.parametersPerResidualDimension(c)
        let width = min(d, max(1, Int((Double(target) / Double(perWidth)).rounded())))
        let kept = try Self.slice(&c, to: width, covariance: covariance)
        return ["sliced_width": .number(Double(width)), "original_width": .number(Double(d)),
                "variance_kept": .number((kept * 1e6).rounded() / 1e6)]
    }

    static func requireStandard(_ c: EditableCheckpoint) throws {
        guard let d = c.layers.first?.inputWidth,
              c.layers.allSatisfy({ $0.inputWidth == d && $0.attentionOutputWidth == d && $0.outputWidth == d
                  && !$0.attentionShortcut && !$0.mlpShortcut && $0.attentionHeads > 0 && $0.intermediateSize > 0 }) else {
            throw CompressionError.unsupportedModel("slicing needs every block to have attention, an MLP and the same residual width")
        }
    }

    /// Parameters per residual dimension once sliced (embedding, untied head, every matrix
    /// that reads or writes the stream, every norm).
    static func parametersPerResidualDimension(_ c: EditableCheckpoint) -> Int {
        let vocabulary = c.config.vocabSize
        var total = 2 * vocabulary + 1
        for shape in c.layers {
            let q = shape.attentionHeads * shape.headDim, kv = shape.keyValueHeads * shape.headDim
            total += (q + 2 * kv) + q + 3 * shape.intermediateSize + 2
        }
        return total
    }

    /// Folds the norms, rotates into the covariance's principal components and keeps `width`
    /// of them. Returns the fraction of the calibration variance the kept directions hold.
    /// With `width` equal to the model's width nothing is deleted and the function the model
    /// computes is unchanged.
    @discardableResult
    public static func slice(_ c: inout EditableCheckpoint, to width: Int, covariance: [Double]) throws -> Double {
        try requireStandard(c)
        let d = c.layers[0].inputWidth
        precondition(covariance.count == d * d && width >= 1 && width <= d)
        let (basis, kept) = try principalBasis(covariance, dimension: d, keep: width)

        // Fold every RMSNorm scale into the matrices that read its output.
        let finalNorm = try c.tensor("model.norm.weight").values
        var head = try c.tensors["lm_head.weight"] ?? c.tensor("model.embed_tokens.weight")
        scaleColumns(&head, finalNorm)
        for layer in c.layers.indices {
            let p = EditableCheckpoint.prefix(layer)
            let inputNorm = try c.tensor(p + "input_layernorm.weight").values
            for name in ["self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"] {
                scaleColumns(&c.tensors[p + name]!, inputNorm)
            }
            let postNorm = try c.tensor(p + "post_attention_layernorm.weight").values
            for name in ["mlp.gate_proj.weight", "mlp.up_proj.weight"] { scaleColumns(&c.tensors[p + name]!, postNorm) }
        }

        // Rotate and slice: readers W·Q_k, writers Q_kᵀ·W.
        let normWeight = EditableCheckpoint.Tensor(shape: [width], values: [Float](repeating: Float((Double(d) / Double(width)).squareRoot()), count: width))
        c.tensors["model.embed_tokens.weight"] = rightMultiply(try c.tensor("model.embed_tokens.weight"), basis, width)
        c.tensors["lm_head.weight"] = rightMultiply(head, basis, width)
        c.tensors["model.norm.weight"] = normWeight
        for layer in c.layers.indices {
            let p = EditableCheckpoint.prefix(layer)
            for name in ["self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight"] {
                c.tensors[p + name] = rightMultiply(c.tensors[p + name]!, basis, width)
            }
            for name in ["self_attn.o_proj.weight", "mlp.down_proj.weight"] {
                c.tensors[p + name] = leftMultiplyTransposed(basis, width, c.tensors[p + name]!)
            }
            c.tensors[p + "input_layernorm.weight"] = normWeight
            c.tensors[p + "post_attention_layernorm.weight"] = normWeight
            c.layers[layer].inputWidth = width
            c.layers[layer].attentionOutputWidth = width
            c.layers[layer].outputWidth = width
        }
        c.config.tieWordEmbeddings = false
        return kept
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
