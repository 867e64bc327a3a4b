import Checkpoint
import Foundation
import HubCore
import Transformer

/// Compresses a checkpoint to a requested ratio with one method, and writes the variant with
/// its recipe. The ratio is exact to within the method's granularity (±0.5 points at most);
/// a ratio the method cannot reach is refused before anything is written.
public struct Compressor {
    public static let tolerance = 0.005

    public let method: any CompressionMethod

    public init(method: any CompressionMethod) {
        self.method = method
    }

    public func compress(config: URL, weights: URL, companions: [String: URL], ratio: Double, calibration: CalibrationData?,
                         output: URL, seed: UInt64 = 0, probeTokens: Int = CalibrationProbe.defaultSearchTokens,
                         progress: @escaping (String) -> Void = { _ in },
                         calibrationProgress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> CompressionRecipe {
        let requested = try CompressionRatio(requested: ratio)
        if method.needsCalibration, calibration == nil { throw CompressionError.calibrationMissing(method: method.name) }
        if FileManager.default.fileExists(atPath: output.path) { throw AtomicWriteError.destinationExists(output.path) }
        progress("loading")
        var checkpoint = try EditableCheckpoint(config: config, weights: weights, companions: companions)
        let base = checkpoint.parameterCount
        let embedding = checkpoint.embeddingParameterCount
        let target = Int((Double(base) * (1 - requested.value)).rounded())
        let (floor, bound) = method.smallestParameterCount(checkpoint)
        guard target >= floor - Int(Self.tolerance * Double(base)) else {
            throw CompressionError.ratioUnreachable(requested: requested.value, maximum: 1 - Double(floor) / Double(base), reason: bound)
        }

        var statistics: ActivationStatisticsSnapshot?
        var probe: CalibrationProbe?
        if method.needsCalibration, let calibration {
            if method.readsStatistics {
                progress("calibrating on \(calibration.tokenCount) tokens")
                let model = try LlamaModel(weights: ModelWeights(config: LlamaConfig.load(from: config), safetensors: SafetensorsFile(path: weights.path)))
                statistics = try CalibrationProbe.statistics(model: model, calibration: calibration, collect: method.statisticsKinds,
                                                             progress: calibrationProgress)
            }
            probe = CalibrationProbe(data: calibration, searchTokens: probeTokens)
        }
        progress("compressing with \(method.name)")
        let context = CompressionContext(statistics: statistics, probe: probe, progress: progress)
        let details = try method.compress(&checkpoint, removing: base - target, context: context)
        let variant = checkpoint.parameterCount
        let achieved = CompressionRatio(variantParameters: variant, baseParameters: base).value
        guard abs(achieved - requested.value) <= Self.tolerance else {
            throw CompressionError.ratioUnreachable(requested: requested.value, maximum: achieved,
                                                    reason: String(format: "the method's granularity left it at %.4f", achieved))
        }
        let recipe = CompressionRecipe(
            method: method.name, requestedRatio: requested.value, achievedRatio: achieved,
            // Each model's own embedding and head: slicing narrows them, and unties the head.
            achievedNonEmbeddingRatio: 1 - Double(variant - checkpoint.embeddingParameterCount) / Double(base - embedding),
            baseParameters: base, variantParameters: variant, baseCheckpointSHA256: checkpoint.baseDigest,
            // Only calibration the method read belongs in its lineage.
            calibration: method.needsCalibration ? calibration.map { .init(source: $0.source, sha256: $0.sha256, tokens: $0.tokenCount) } : nil,
            seed: seed, codeVersion: "hubctl \(HubVersion.current)", createdAt: ISO8601DateFormatter().string(from: Date()),
            details: .object(details))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        progress("writing \(output.lastPathComponent)")
        try checkpoint.write(to: output, recipe: encoder.encode(recipe))
        return recipe
    }
}
