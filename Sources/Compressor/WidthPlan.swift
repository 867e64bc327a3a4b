import Checkpoint

/// Chooses which MLP channels and KV groups to remove, across all blocks, to cut a given
/// number of parameters. Each unit's score is normalized by the mean score of its kind in its
/// block (scores are not comparable across blocks), then units go from the lowest score up
/// until enough parameters are gone. A channel costs 3 × width parameters, so the budget is
/// met to within one KV group (0.2 % of SmolLM2-135M).
struct WidthPlan {
    enum Unit: Hashable { case channel(layer: Int, index: Int), group(layer: Int, index: Int) }

    let removed: Set<Unit>
    let removedParameters: Int

    init(layers: [LayerShape], channelScores: [[Double]], groupScores: [[Double]], parametersToRemove: Int, pruneHeads: Bool) {
        var candidates: [(unit: Unit, score: Double, cost: Int)] = []
        for (layer, shape) in layers.enumerated() {
            let channels = channelScores[layer]
            let mean = max(channels.reduce(0, +) / Double(max(channels.count, 1)), 1e-30)
            for (i, score) in channels.enumerated() {
                candidates.append((.channel(layer: layer, index: i), score / mean, 3 * shape.attentionOutputWidth))
            }
            guard pruneHeads, shape.keyValueHeads > 0 else { continue }
            let groups = groupScores[layer]
            let groupMean = max(groups.reduce(0, +) / Double(max(groups.count, 1)), 1e-30)
            let group = shape.attentionHeads / shape.keyValueHeads
            let cost = shape.headDim * shape.inputWidth * (2 * group + 2)
            for (g, score) in groups.enumerated() { candidates.append((.group(layer: layer, index: g), score / groupMean, cost)) }
        }
        candidates.sort { $0.score < $1.score }
        var removed = Set<Unit>(), total = 0
        for candidate in candidates where total < parametersToRemove {
            // A whole KV group may overshoot; skip it if a channel can finish the job more exactly.
            if case .group = candidate.unit, total + candidate.cost > parametersToRemove + candidate.cost / 2 { continue }
            removed.insert(candidate.unit)
            total += candidate.cost
        }
        self.removed = removed
        removedParameters = total
    }

    func keptChannels(layer: Int, count: Int) -> [Int] {
        (0 ..< count).filter { !removed.contains(.channel(layer: layer, index: $0)) }
    }

    func keptGroups(layer: Int, count: Int) -> [Int] {
        (0 ..< count).filter { !removed.contains(.group(layer: layer, index: $0)) }
    }

    func apply(to checkpoint: inout EditableCheckpoint) throws {
        for (layer, shape) in checkpoint.layers.enumerated() {
            try checkpoint.keepMLPChannels(keptChannels(layer: layer, count: shape.intermediateSize), layer: layer)
            if shape.keyValueHeads > 0 {
                try checkpoint.keepKeyValueGroups(keptGroups(layer: layer, count: shape.keyValueHeads), layer: layer)
            }
        }
    }
}
