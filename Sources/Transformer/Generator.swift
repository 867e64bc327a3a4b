import Foundation

/// Autoregressive generation: the prompt in one forward pass, then one token at a time from
/// the KV cache, until a stop token or the token budget.
public struct GenerationOptions: Sendable {
    public var maxNewTokens: Int
    public var stopTokens: Set<Int>
    public var sampler: Sampler

    public init(maxNewTokens: Int = 128, stopTokens: Set<Int> = [], sampler: Sampler = Sampler()) {
        self.maxNewTokens = maxNewTokens
        self.stopTokens = stopTokens
        self.sampler = sampler
    }
}

public struct GenerationResult: Sendable {
    public let tokens: [Int]
    public let promptTokens: Int
    public let stoppedOnToken: Bool
    public let prefillSeconds: Double
    public let decodeSeconds: Double
}

extension LlamaModel {
    /// Generates after `prompt`, calling `onToken` with each new token as soon as it exists.
    public func generate(prompt: [Int], options: GenerationOptions, onToken: (Int) -> Void = { _ in }) throws -> GenerationResult {
        guard !prompt.isEmpty else { throw RuntimeError.emptyInput }
        let capacity = min(config.maxPositionEmbeddings, prompt.count + options.maxNewTokens)
        guard prompt.count < capacity || options.maxNewTokens == 0 else {
            throw RuntimeError.contextOverflow(needed: prompt.count + 1, limit: config.maxPositionEmbeddings)
        }
        let cache = makeCache(capacity: capacity)
        var sampler = options.sampler
        var generated: [Int] = []
        var stopped = false
        let start = DispatchTime.now().uptimeNanoseconds
        var hidden = try forward(prompt, cache: cache)
        let prefillEnd = DispatchTime.now().uptimeNanoseconds
        while generated.count < options.maxNewTokens {
            let logits = logits(hidden, rows: 1)
            let token = sampler.next(logits.pointer, count: logits.count)
            if options.stopTokens.contains(token) { stopped = true; break }
            generated.append(token)
            onToken(token)
            if generated.count == options.maxNewTokens || cache.length == cache.capacity { break }
            hidden = try forward([token], cache: cache)
        }
        let end = DispatchTime.now().uptimeNanoseconds
        return GenerationResult(tokens: generated, promptTokens: prompt.count, stoppedOnToken: stopped,
                                prefillSeconds: Double(prefillEnd - start) / 1e9, decodeSeconds: Double(end - prefillEnd) / 1e9)
    }
}
