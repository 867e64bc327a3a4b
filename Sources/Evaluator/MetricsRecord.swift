import Foundation
import HubCore

/// Everything one evaluation of one model measured, with the machine it was measured on.
/// Its JSON form is `schemas/metrics.schema.json`; the registry stores it beside the variant.
public struct MetricsRecord: Codable, Sendable, Equatable {
    public struct Loss: Codable, Sendable, Equatable {
        public let corpus: String
        public let documents: Int
        public let windows: Int
        public let tokens: Int
        public let context: Int
        public let crossEntropy: Double
        public let perplexity: Double

        enum CodingKeys: String, CodingKey {
            case corpus, documents, windows, tokens, context, crossEntropy = "cross_entropy", perplexity
        }
    }

    public var schemaVersion = 1
    public let model: String
    public let suite: String
    public let createdAt: String
    public let codeVersion: String
    public let hardware: HardwareProfile
    public let parameters: ParameterCount
    public let bytesOnDisk: Int
    public let loss: Loss?
    public let tasks: [MultipleChoiceAccuracy.Result]
    public let latency: LatencyProbe.Result?
    /// The machine's speed measured beside the latency, so the latency can be scaled to
    /// another machine (absent from records made before it existed, and without latency).
    public var machineSpeed: MachineSpeed?
    public let peakRSSBytes: Int
    public let seconds: Double

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", model, suite, createdAt = "created_at", codeVersion = "code_version", hardware
        case parameters, bytesOnDisk = "bytes_on_disk", loss, tasks, latency, machineSpeed = "machine_speed", peakRSSBytes = "peak_rss_bytes", seconds
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(schemaVersion, forKey: .schemaVersion)
        try c.encode(model, forKey: .model)
        try c.encode(suite, forKey: .suite)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(codeVersion, forKey: .codeVersion)
        try c.encode(hardware, forKey: .hardware)
        try c.encode(parameters, forKey: .parameters)
        try c.encode(bytesOnDisk, forKey: .bytesOnDisk)
        try c.encode(loss, forKey: .loss)
        try c.encode(tasks, forKey: .tasks)
        try c.encode(latency, forKey: .latency)
        try c.encodeIfPresent(machineSpeed, forKey: .machineSpeed)
        try c.encode(peakRSSBytes, forKey: .peakRSSBytes)
        try c.encode(seconds, forKey: .seconds)
    }
}
