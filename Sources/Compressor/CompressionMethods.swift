import Checkpoint
import Foundation
import HubCore

/// One structured compression method: given a checkpoint and a number of parameters to
/// remove, it cuts them and says what it did (and why: what it measured, what it chose).
public protocol CompressionMethod: Sendable {
    var name: String { get }
    /// One line for `hubctl compress --help` and listings.
    var summary: String { get }
    var needsCalibration: Bool { get }
    /// The costlier statistics the base model's calibration pass must collect.
    var statisticsKinds: StatisticsKinds { get }
    /// Whether the method reads the base model's calibration statistics at all; one that fits
    /// its choices on its own forward passes (sequential slicing) spares the compressor that pass.
    var readsStatistics: Bool { get }
    /// The fewest parameters the method can leave of this checkpoint, and what bounds it: the
    /// compressor refuses a ratio past it before calibrating.
    func smallestParameterCount(_ checkpoint: EditableCheckpoint) -> (parameters: Int, reason: String)
    /// Removes at least `parameters` parameters (to within the method's granularity).
    func compress(_ checkpoint: inout EditableCheckpoint, removing parameters: Int, context: CompressionContext) throws -> [String: JSONValue]
}

/// What a method may read besides the checkpoint: the base model's calibration statistics
/// and a probe that measures the calibration loss of a candidate cut (calibrated methods only).
public struct CompressionContext {
    public let statistics: ActivationStatisticsSnapshot?
    public let probe: CalibrationProbe?
    public let progress: (String) -> Void

    public init(statistics: ActivationStatisticsSnapshot? = nil, probe: CalibrationProbe? = nil, progress: @escaping (String) -> Void = { _ in }) {
        self.statistics = statistics
        self.probe = probe
        self.progress = progress
    }

    func statistics(for method: String) throws -> ActivationStatisticsSnapshot {
        guard let statistics else { throw CompressionError.calibrationMissing(method: method) }
        return statistics
    }

    func probe(for method: String) throws -> CalibrationProbe {
        guard let probe else { throw CompressionError.calibrationMissing(method: method) }
        return probe
    }
}

/// The calibration statistics a method may use, averaged per token.
public struct ActivationStatisticsSnapshot: Sendable {
    /// Root mean square of each SwiGLU channel, per block.
    public let channelRMS: [[Double]]
    /// Root mean square of each attention head's output vector, per block.
    public let headRMS: [[Double]]
    /// ShortGPT's block influence, mean 1 − cos(input, output), per block.
    public let blockInfluence: [Double]
    public let tokens: Int
    /// Σ x̂ x̂ᵀ of the RMS-normalized residual stream at every block's input and at the final
    /// residual (layers + 1 positions), row-major [width, width]; when asked for.
    public let residualCovariances: [[Double]]?
    /// Per block, E[a aᵀ] of the SwiGLU activations (what `down_proj` reads), row-major; when asked for.
    public let mlpInputMoments: [[Double]]?
    /// Per block, E[a aᵀ] of the heads' outputs side by side (what `o_proj` reads); when asked for.
    public let attentionInputMoments: [[Double]]?
}

extension CompressionMethod {
    public var statisticsKinds: StatisticsKinds { [] }
    public var readsStatistics: Bool { true }
    /// Width and depth methods keep the embedding, the head and the final norm, and remove at
    /// most every block.
    public func smallestParameterCount(_ c: EditableCheckpoint) -> (parameters: Int, reason: String) {
        (c.parameterCount - c.layers.indices.reduce(0) { $0 + c.blockParameterCount($1) },
         "it keeps the embedding and head (\(c.embeddingParameterCount) parameters) and removes at most every block")
    }
}

public enum CompressionMethods {
    /// Every method by name. The first of each family is its recommended form; the others are
    /// the cheaper or older forms kept as baselines.
    public static let all: [any CompressionMethod] = [
        SliceGPTSlicing(rotation: .sequential), SliceGPTSlicing(rotation: .shared),
        CalibratedWidthPruning(allocation: .sensitivity), CalibratedWidthPruning(allocation: .global),
        MeasuredDepthPruning(), BlockInfluencePruning(),
        PruneNet(), WeightOnlyWidthPruning(),
    ]

    public static func named(_ name: String) throws -> any CompressionMethod {
        guard let method = all.first(where: { $0.name == name }) else {
            throw CompressionError.unknownMethod(name, known: all.map(\.name))
        }
        return method
    }
}

/// Weight-only scores, which need no data. A SwiGLU channel i scores
/// ‖gate_i‖·‖up_i‖·‖down_:,i‖ (how strongly it can be driven and how much it writes back); a
/// KV group scores Σ over its query heads of ‖q_h‖·‖o_:,h‖, times ‖v_g‖ (Frobenius norms).
enum WeightScores {
    static func channels(_ c: EditableCheckpoint, layer: Int) throws -> [Double] {
        let p = EditableCheckpoint.prefix(layer)
        guard c.layers[layer].intermediateSize > 0 else { return [] }
        let gate = try c.tensor(p + "mlp.gate_proj.weight"), up = try c.tensor(p + "mlp.up_proj.weight")
        let down = try c.tensor(p + "mlp.down_proj.weight")
        return (0 ..< gate.rows).map { gate.rowNorm($0) * up.rowNorm($0) * down.columnNorm($0) }
    }

    static func groups(_ c: EditableCheckpoint, layer: Int, headScale: [Double]? = nil) throws -> [Double] {
        let shape = c.layers[layer]
        guard shape.keyValueHeads > 0 else { return [] }
        let p = EditableCheckpoint.prefix(layer)
        let q = try c.tensor(p + "self_attn.q_proj.weight"), o = try c.tensor(p + "self_attn.o_proj.weight")
        let v = try c.tensor(p + "self_attn.v_proj.weight")
        let d = shape.headDim, group = shape.attentionHeads / shape.keyValueHeads
        func block(_ rows: Range<Int>, _ norm: (Int) -> Double) -> Double { rows.map { let n = norm($0); return n * n }.reduce(0, +).squareRoot() }
        return (0 ..< shape.keyValueHeads).map { g in
            let heads = (g * group ..< (g + 1) * group).map { h -> Double in
                let qNorm = block(h * d ..< (h + 1) * d, q.rowNorm), oNorm = block(h * d ..< (h + 1) * d, o.columnNorm)
                return (headScale?[h] ?? qNorm) * oNorm
            }.reduce(0, +)
            return heads * (headScale == nil ? block(g * d ..< (g + 1) * d, v.rowNorm) : 1)
        }
    }
}

/// Calibration-free width pruning: removes the SwiGLU channels and KV groups (with their
/// query heads) of lowest weight-only score, ranked across all blocks. The minimum the
/// PruneNet line of work asks for — importance from the weights alone — not its learned policy.
public struct WeightOnlyWidthPruning: CompressionMethod {
    public init() {}

    public let name = "weight-prune"
    public let summary = "calibration-free baseline: SwiGLU channels and KV groups of lowest weight norms"
    public let needsCalibration = false

    public func compress(_ c: inout EditableCheckpoint, removing parameters: Int, context: CompressionContext) throws -> [String: JSONValue] {
        let channels = try c.layers.indices.map { try WeightScores.channels(c, layer: $0) }
        let groups = try c.layers.indices.map { try WeightScores.groups(c, layer: $0) }
        return try WidthPlan.prune(&c, channelScores: channels, groupScores: groups, removing: parameters, pruneHeads: true)
    }
}

extension WidthPlan {
    /// Plans the cut from the scores, applies it, and describes the result for the recipe.
    static func prune(_ c: inout EditableCheckpoint, channelScores: [[Double]], groupScores: [[Double]], removing parameters: Int,
                      pruneHeads: Bool, layerBudgets: [Int]? = nil, repairingWith statistics: ActivationStatisticsSnapshot? = nil) throws -> [String: JSONValue] {
        let plan = WidthPlan(layers: c.layers, channelScores: channelScores, groupScores: groupScores,
                             parametersToRemove: parameters, pruneHeads: pruneHeads, layerBudgets: layerBudgets)
        try plan.apply(to: &c, repairingWith: statistics)
        return details(c)
    }

    /// What a width method left in every block, for the recipe.
    static func details(_ c: EditableCheckpoint) -> [String: JSONValue] {
        ["blocks": .array(c.layers.map { shape in
            .object(["source_layer": shape.sourceLayer.map { .number(Double($0)) } ?? .null,
                     "intermediate_size": .number(Double(shape.intermediateSize)),
                     "key_value_heads": .number(Double(shape.keyValueHeads))])
        })]
    }
}

extension EditableCheckpoint {
    /// Parameters of block `layer`.
    func blockParameterCount(_ layer: Int) -> Int {
        let p = Self.prefix(layer)
        return tensors.filter { $0.key.hasPrefix(p) }.reduce(0) { $0 + $1.value.values.count }
    }
}
