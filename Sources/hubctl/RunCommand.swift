import ArgumentParser
import Checkpoint
import Foundation
import Transformer

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text with a model, streaming it as it is produced.",
        discussion: """
        The model is a Hugging Face style directory (config.json, model.safetensors, \
        tokenizer.json) or a registry repository namespace/name[@revision]. Greedy by default; \
        --temperature and --top-p sample instead (--seed makes a sampled run repeatable). \
        Generation stops at the end-of-sequence token or after --max-tokens.

        Examples:
          hubctl run smollm2/SmolLM2-135M-Instruct \\
              "The history of the railway in Britain began"
          hubctl run smollm2-hf "Write a haiku about autumn." --chat \\
              --temperature 0.7 --top-p 0.9
        """
    )

    @Argument(help: "A model directory or namespace/name[@revision].") var model: String
    @Argument(help: "The prompt.") var prompt: String
    @Option(help: "Most new tokens to generate.") var maxTokens = 128
    @Option(help: "Sampling temperature; 0 is greedy.") var temperature: Float = 0
    @Option(help: "Nucleus sampling: keep the most likely tokens up to this probability mass.") var topP: Float = 1
    @Option(help: "Seed of the sampler.") var seed: UInt64 = 0
    @Option(help: "BLAS threads (default: all cores).") var threads: Int?
    @Flag(help: "Wrap the prompt in the model's chat format (ChatML user turn).") var chat = false
    @Flag(help: "Print timing on stderr when done.") var stats = false
    @Flag(help: "Print {prompt_tokens, tokens, text} as JSON instead of streaming text (for parity checks against other runtimes).")
    var json = false
    @Flag(help: "With --json, add the prompt's logits at every position (vocabulary-wide rows).") var logits = false
    @OptionGroup var data: DataDirectoryOption

    func run() throws {
        if let threads { BLASThreads.count = threads }
        let (model, tokenizer) = try ModelLocator.load(ModelLocator.locate(self.model, data: data))
        let text = chat ? "<|im_start|>user\n\(prompt)<|im_end|>\n<|im_start|>assistant\n" : prompt
        let promptTokens = tokenizer.encode(text)
        var stops = Set<Int>()
        if let eos = tokenizer.eosTokenID { stops.insert(eos) }
        if let end = tokenizer.id(of: "<|im_end|>") { stops.insert(end) }
        if let end = tokenizer.id(of: "<|endoftext|>") { stops.insert(end) }

        var decoder = StreamingDecoder(tokenizer: tokenizer)
        let output = FileHandle.standardOutput
        if json {
            let result = try model.generate(prompt: promptTokens, options: GenerationOptions(
                maxNewTokens: maxTokens, stopTokens: stops, sampler: Sampler(temperature: temperature, topP: topP, seed: seed)))
            var record: [String: Any] = ["prompt_tokens": promptTokens, "tokens": result.tokens, "text": tokenizer.decode(result.tokens)]
            if logits {
                let rows = promptTokens.count, vocabulary = model.config.vocabSize
                let values = model.logits(try model.forward(promptTokens, cache: model.makeCache(capacity: rows), outputRows: rows), rows: rows)
                record["logits"] = (0 ..< rows).map { r in (0 ..< vocabulary).map { Double(values.pointer[r * vocabulary + $0]) } }
            }
            output.write(try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) + Data("\n".utf8))
            return
        }
        if !chat { output.write(Data(prompt.utf8)) }
        let result = try model.generate(
            prompt: promptTokens,
            options: GenerationOptions(maxNewTokens: maxTokens, stopTokens: stops,
                                       sampler: Sampler(temperature: temperature, topP: topP, seed: seed))
        ) { token in
            output.write(Data(decoder.append(token).utf8))
        }
        output.write(Data((decoder.finish() + "\n").utf8))
        if stats {
            let decoded = max(result.tokens.count - 1, 1)
            Output.progress(String(format: "prompt %d tokens in %.3f s (%.1f tok/s); %d new tokens, decode %.1f tok/s",
                                   result.promptTokens, result.prefillSeconds, Double(result.promptTokens) / result.prefillSeconds,
                                   result.tokens.count, Double(decoded) / max(result.decodeSeconds, 1e-9)))
        }
    }
}
