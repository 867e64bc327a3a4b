import Checkpoint
import Foundation
import HubCore

/// One structured compression method: given a checkpoint and a number of parameters to
/// remove, it cuts them and says what it did.
public protocol CompressionMethod: Sendable {
    var name: String { get }
    var needsCalibration: Bool { get }
    /// Whether the calibration pass must collect the residual stream's covariance.
    var needsResidualCovariance: Bool { get }
    /// Whether the method narrows the embedding too (so it is not bound by the embedding's size).
    var slicesEmbedding: Bool { get }
    /// Removes at least `parameters` parameters (to within the method's granularity).
    func compress(_ checkpoint: inout EditableCheckpoint, removing parameters: Int, statistics: ActivationStatisticsSnapshot?) throws -> [String: JSONValue]
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
    /// Covariance of the RMS-normalized residual stream, row-major [width, width]; when asked for.
    public let residualCovariance: [Double]?
}

extension CompressionMethod {
    public var needsResidualCovariance: Bool { false }
    public var slicesEmbedding: Bool { false }
}

public enum CompressionMethods {
    public static let all: [any CompressionMethod] = [SliceGPTSlicing(), WeightOnlyWidthPruning(), CalibratedWidthPruning(), BlockInfluencePruning()]

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
    public let needsCalibration = false

    public func compress(_ c: inout EditableCheckpoint, removing parameters: Int, statistics: ActivationStatisticsSnapshot?) throws -> [String: JSONValue] {
        let channels = try c.layers.indices.map { try WeightScores.channels(c, layer: $0) }
        let groups = try c.layers.indices.map { try WeightScores.groups(c, layer: $0) }
        return try WidthPlan.prune(&c, channelScores: channels, groupScores: groups, removing: parameters, pruneHeads: true)
    }
}

/// Calibration-based width pruning in the manner of Wanda-sp / FLAP: a channel scores
/// RMS(activation_i) · ‖down_:,i‖ and a KV group Σ over its heads of RMS(head output) · ‖o_:,h‖,
/// both measured on calibration text; lowest-scored units go first, across all blocks.
public struct CalibratedWidthPruning: CompressionMethod {
    public init() {}

    public let name = "width-prune"
    public let needsCalibration = true

    public func compress(_ c: inout EditableCheckpoint, removing parameters: Int, statistics: ActivationStatisticsSnapshot?) throws -> [String: JSONValue] {
        guard let statistics else { throw CompressionError.calibrationMissing(method: name) }
        var channels: [[Double]] = [], groups: [[Double]] = []
        for layer in c.layers.indices {
            let p = EditableCheckpoint.prefix(layer)
            if c.layers[layer].intermediateSize > 0 {
                let down = try c.tensor(p + "mlp.down_proj.weight")
                channels.append((0 ..< down.columns).map { statistics.channelRMS[layer][$0] * down.columnNorm($0) })
            } else {
                channels.append([])
            }
            groups.append(try WeightScores.groups(c, layer: layer, headScale: statistics.headRMS[layer]))
        }
        return try WidthPlan.prune(&c, channelScores: channels, groupScores: groups, removing: parameters, pruneHeads: true)
    }
}

/// Depth pruning in the manner of ShortGPT: blocks are ranked by block influence on
/// calibration text (how much a block changes the residual stream) and the least influential
/// are removed whole. A block is 2.6 % of SmolLM2-135M, so what whole blocks cannot reach
/// exactly is finished by weight-only SwiGLU channel pruning in the remaining blocks; the
/// recipe records both.
public struct BlockInfluencePruning: CompressionMethod {
    public init() {}

    public let name = "depth-prune"
    public let needsCalibration = true

    public func compress(_ c: inout EditableCheckpoint, removing parameters: Int, statistics: ActivationStatisticsSnapshot?) throws -> [String: JSONValue] {
        guard let statistics else { throw CompressionError.calibrationMissing(method: name) }
        let before = c.parameterCount
        var dropped = Set<Int>(), removed = 0
        for layer in c.layers.indices.sorted(by: { statistics.blockInfluence[$0] < statistics.blockInfluence[$1] }) {
            let cost = c.blockParameterCount(layer)
            if removed + cost > parameters { break }
            dropped.insert(layer)
            removed += cost
        }
        let sources = c.layers.map(\.sourceLayer)
        try c.dropBlocks(dropped)
        let remaining = parameters - (before - c.parameterCount)
        if remaining > 0 {
            let channels = try c.layers.indices.map { try WeightScores.channels(c, layer: $0) }
            _ = try WidthPlan.prune(&c, channelScores: channels, groupScores: c.layers.map { _ in [] }, removing: remaining, pruneHeads: false)
        }
        var details = WidthPlan.details(c)
        details["dropped_blocks"] = .array(dropped.sorted().map { .number(Double(sources[$0] ?? $0)) })
        details["block_influence"] = .array(statistics.blockInfluence.map { .number(($0 * 1e6).rounded() / 1e6) })
        return details
    }
}

extension WidthPlan {
    /// Plans the cut from the scores, applies it, and describes the result for the recipe.
    static func prune(_ c: inout EditableCheckpoint, channelScores: [[Double]], groupScores: [[Double]], removing parameters: Int,
                      pruneHeads: Bool) throws -> [String: JSONValue] {
        let plan = WidthPlan(layers: c.layers, channelScores: channelScores, groupScores: groupScores,
                             parametersToRemove: parameters, pruneHeads: pruneHeads)
        try plan.apply(to: &c)
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
