import Foundation

/// A model's files, wherever they live: a Hugging Face style directory, or a registry's blobs
/// read in place.
public struct ModelFiles: Sendable, Codable, Equatable {
    public let config: URL
    public let weights: URL
    public let tokenizer: URL
    public let tokenizerConfig: URL?

    public init(config: URL, weights: URL, tokenizer: URL, tokenizerConfig: URL?) {
        self.config = config
        self.weights = weights
        self.tokenizer = tokenizer
        self.tokenizerConfig = tokenizerConfig
    }

    /// The files of a Hugging Face style directory (tokenizer_config.json only if present).
    public init(directory: URL) {
        let tokenizerConfig = directory.appendingPathComponent("tokenizer_config.json")
        self.init(config: directory.appendingPathComponent("config.json"), weights: directory.appendingPathComponent("model.safetensors"),
                  tokenizer: directory.appendingPathComponent("tokenizer.json"),
                  tokenizerConfig: FileManager.default.fileExists(atPath: tokenizerConfig.path) ? tokenizerConfig : nil)
    }
}
