import ArgumentParser
import Checkpoint
import Compressor
import Foundation

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Store a model's matrices as Q8_0 or Q4_0 blocks, which the runtime decodes from directly.",
        discussion: """
        Every matrix whose rows are whole blocks of 32 values becomes GGML blocks (Q8_0: \
        an fp16 scale and 32 int8, 34 bytes per 32 weights; Q4_0: an fp16 scale and 32 \
        nibbles, 18 bytes), byte for byte what the gguf package's quantizer writes. \
        Under q4_0 the output matrix (the tied embedding, or lm_head) stays Q8_0, as \
        llama.cpp keeps it at higher precision: Q4_0 there costs most of the quality \
        for one matrix (--head-type q4_0 to have it anyway). Norms stay fp32, and so does a matrix whose rows are not whole blocks (a \
        width-pruned 1281), listed in the record. The runtime (run, eval, serve, pull) \
        multiplies with the blocks where they lie in the memory mapping, so the model \
        stays a quarter (Q8_0) or an eighth (Q4_0) of its fp32 size in memory, and \
        decoding, which streams every weight once per token, reads that much less.

        quantization.json (schemas/quantization.schema.json) records the type and the \
        parent's sha256: register (or push) the output with the parent named and the lineage edge is \
        checked like a compression's, so compress → fine-tune → quantize is one lineage. \
        Quantize last: training and compression need fp32 weights and refuse a quantized \
        model. transformers cannot read these blocks; export-gguf from the fp32 parent \
        serves llama.cpp. The output directory appears whole or not at all.

        Examples:
          hubctl quantize smollm2/SmolLM2-135M-Instruct --type q8_0 -o smollm2-q8
          hubctl eval smollm2-q8 --suite smoke
          hubctl register smollm2-q8 smollm2/SmolLM2-135M-q8 \\
              --parent smollm2/SmolLM2-135M-Instruct
        """
    )
    @Argument(help: "An fp32 model directory or namespace/name[@revision].") var model: String
    @Option(help: "q8_0 or q4_0.") var type: String
    @Option(help: "The output matrix's type (the tied embedding, or lm_head); default q8_0 under q4_0, else the same type.")
    var headType: String?
    @Option(name: .shortAndLong, help: "The directory to create.") var output: String
    @OptionGroup var data: DataDirectoryOption

    func run() throws {
        let blockType = try ModelQuantizer.blockType(named: type)
        let head = try headType.map { try ModelQuantizer.blockType(named: $0) }
        let files = try ModelLocator.locate(model, data: data)
        let record = try ModelQuantizer.quantize(
            ModelFiles(config: files.config, weights: files.weights, tokenizer: files.tokenizer, tokenizerConfig: files.tokenizerConfig),
            to: blockType, headType: head, destination: URL(fileURLWithPath: output))
        print(String(format: "wrote %@: %d matrices in %@ (output matrix %@), %d kept fp32; model.safetensors %.1f MB → %.1f MB (%.2f×)", output,
                     record.quantizedTensors, record.type.uppercased(), record.headType.uppercased(), record.keptMatrices.count, Double(record.parentBytes) / 1e6,
                     Double(record.bytes) / 1e6, Double(record.parentBytes) / Double(max(record.bytes, 1))))
    }
}
