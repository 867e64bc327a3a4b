import ArgumentParser
import Checkpoint
import Foundation

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a GGUF checkpoint into a Hugging Face model directory (fp32 safetensors, or its own Q8_0/Q4_0 blocks).",
        discussion: """
        Dequantizes every tensor to fp32, renames it to the Hugging Face layout, undoes llama.cpp's \
        rotary permutation of the Q and K projections, and writes model.safetensors, config.json, \
        generation_config.json, tokenizer.json and tokenizer_config.json. The output directory \
        appears complete or not at all; an existing one is never overwritten.

        With --keep-blocks, matrices in Q8_0 or Q4_0 are not dequantized: their blocks go into \
        model.safetensors as they are (the layout hubctl quantize writes), and the runtime \
        decodes from them. Other types still become fp32.

        Examples:
          hubctl convert SmolLM2-135M-Instruct.Q4_1.gguf -o smollm2-hf
          hubctl convert model.q8_0.gguf --keep-blocks -o model-q8
        """
    )

    @Argument(help: "The GGUF file to convert.") var gguf: String
    @Option(name: .shortAndLong, help: "The directory to create.") var output: String
    @Flag(help: "Keep Q8_0 and Q4_0 matrices as blocks instead of dequantizing them.") var keepBlocks = false

    func run() throws {
        let file = try GGUFFile(path: gguf)
        let summary = try GGUFConverter.convert(file, to: URL(fileURLWithPath: output), keepBlocks: keepBlocks) { _, done, total in
            Output.bar("converting", done: done, total: total)
        }
        let kept = summary.quantization.map { " (\(QuantizedTensors.name(of: $0.type).uppercased()) blocks kept)" } ?? ""
        print("wrote \(summary.tensorCount) tensors and \(summary.files.count) files to \(summary.directory.path)\(kept)")
    }
}

struct ExportGGUF: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-gguf",
        abstract: "Write a model as a GGUF file llama.cpp runs, in F32, F16, Q8_0 or Q4_0.",
        discussion: """
        The reverse of convert: the tokenizer goes into tokenizer.ggml.*, the Q and K \
        projections are permuted back to llama.cpp's rotary layout, and every matrix is \
        written in --type (norms stay F32; a matrix whose rows do not split into 32-element \
        blocks falls back to F16). Q8_0 and Q4_0 blocks are bit-identical to the gguf Python \
        package's quantizer.

        A variant whose blocks are all alike is written as llama.cpp's llama architecture. One \
        whose blocks differ in heads or FFN width, or lack attention, is written as its deci \
        architecture, which reads those per block. A variant whose residual changes width \
        (slicegpt's shortcut projections) or whose head sizes differ is refused: llama.cpp \
        has no such layer; run it in transformers or this runtime instead. The file appears \
        whole or not at all.

        Examples:
          hubctl export-gguf team/SmolLM2-w30 --type q8_0 -o w30.q8_0.gguf
          hubctl export-gguf ./my-variant --type f32 -o my-variant.f32.gguf
        """
    )

    @Argument(help: "A model directory, or a registry model namespace/name[@revision].") var model: String
    @Option(help: "Weight encoding: f32, f16, q8_0 or q4_0.") var type = "q8_0"
    @Option(name: .shortAndLong, help: "The .gguf file to write.") var output: String
    @OptionGroup var data: DataDirectoryOption

    func run() throws {
        guard let encoding = GGMLQuantizer.writable.first(where: { $0.description.lowercased() == type.lowercased() }) else {
            throw ValidationError("--type \(type) is not one of f32, f16, q8_0, q4_0")
        }
        let destination = URL(fileURLWithPath: output)
        guard !FileManager.default.fileExists(atPath: destination.path) else {
            throw ValidationError("\(output) exists; choose another path (an existing file is never overwritten)")
        }
        let files = try ModelLocator.locate(model, data: data)
        let summary = try GGUFExporter.export(ModelFiles(config: files.config, weights: files.weights, tokenizer: files.tokenizer,
                                                         tokenizerConfig: files.tokenizerConfig),
                                              as: encoding, name: files.label, to: destination)
        print("wrote \(output): \(summary.layout.rawValue) layout, \(summary.tensors) tensors, \(Output.bytes(summary.bytes)) of \(encoding) weights")
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the header of a GGUF or safetensors file: metadata and tensor table.",
        discussion: "The file is fully validated first; a bad file is reported with what is wrong and where."
    )

    @Argument(help: "A .gguf or .safetensors file.") var file: String
    @Flag(help: "List every tensor, not only the first 20.") var allTensors = false
    @Flag(help: "Print {format, metadata, tensors: [{name, type, shape}]} as JSON (every tensor).") var json = false

    func run() throws {
        if json { return try printJSON() }
        if file.hasSuffix(".safetensors") {
            let st = try SafetensorsFile(path: file)
            print("safetensors: \(st.entries.count) tensors, \(Output.bytes(st.mappedFile.count))")
            for (key, value) in st.metadata.sorted(by: { $0.key < $1.key }) { print("  \(key) = \(value)") }
            for entry in allTensors ? st.entries : Array(st.entries.prefix(20)) {
                print("  \(entry.name)  \(entry.dtype.rawValue)  \(entry.shape)")
            }
            return
        }
        let gguf = try GGUFFile(path: file)
        print("GGUF v\(gguf.version): \(gguf.tensors.count) tensors, \(gguf.metadata.count) metadata keys, alignment \(gguf.alignment)")
        for (key, value) in gguf.metadata {
            switch value {
            case .array(let type, let items): print("  \(key) = [\(items.count) × \(type)]")
            case .string(let s): print("  \(key) = \(s.count > 80 ? String(s.prefix(77)) + "..." : s)")
            default: print("  \(key) = \(value.number.map { "\($0)" } ?? "\(value)")")
            }
        }
        var counts: [GGMLType: Int] = [:]
        for tensor in gguf.tensors { counts[tensor.type, default: 0] += 1 }
        print("tensor types: " + counts.sorted { $0.value > $1.value }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))
        for tensor in allTensors ? gguf.tensors : Array(gguf.tensors.prefix(20)) {
            print("  \(tensor.name)  \(tensor.type)  \(tensor.shape)")
        }
    }

    struct Header: Encodable {
        struct Tensor: Encodable { let name: String, type: String, shape: [Int] }
        let format: String
        let metadata: [String: String]
        let tensors: [Tensor]
    }

    /// Metadata values as text (arrays as their length and type), so that every header has one shape.
    func printJSON() throws {
        if file.hasSuffix(".safetensors") {
            let st = try SafetensorsFile(path: file)
            print(try Output.json(Header(format: "safetensors", metadata: st.metadata,
                                         tensors: st.entries.map { .init(name: $0.name, type: $0.dtype.rawValue, shape: $0.shape) })))
            return
        }
        let gguf = try GGUFFile(path: file)
        var metadata: [String: String] = ["gguf.version": "\(gguf.version)", "gguf.alignment": "\(gguf.alignment)"]
        for (key, value) in gguf.metadata {
            switch value {
            case .array(let type, let items): metadata[key] = "[\(items.count) × \(type)]"
            case .string(let s): metadata[key] = s
            default: metadata[key] = value.number.map { "\($0)" } ?? "\(value)"
            }
        }
        print(try Output.json(Header(format: "gguf", metadata: metadata,
                                     tensors: gguf.tensors.map { .init(name: $0.name, type: "\($0.type)", shape: $0.shape.map { Int($0) }) })))
    }
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encode text with a model's tokenizer and print the token ids.",
        discussion: """
        The tokenizer comes from a GGUF file's metadata or from a model directory's tokenizer.json.

        Example:
          hubctl tokenize smollm2-hf "The history of the railway in Britain began"
        """
    )

    @Argument(help: "A GGUF file or a directory with tokenizer.json.") var model: String
    @Argument(help: "The text to encode.") var text: String
    @Flag(help: "Also print each token's text.") var pieces = false
    @Flag(help: "Print {ids, pieces} as JSON.") var json = false

    func run() throws {
        let tokenizer: BPETokenizer = model.hasSuffix(".gguf")
            ? try BPETokenizer(gguf: GGUFFile(path: model))
            : try BPETokenizer(huggingFaceJSON: URL(fileURLWithPath: model).appendingPathComponent("tokenizer.json"))
        let ids = tokenizer.encode(text)
        if json {
            print(try Output.json(["ids": ids.map(String.init), "pieces": ids.map { tokenizer.decode([$0]) }]))
            return
        }
        print(ids.map(String.init).joined(separator: " "))
        if pieces { print(ids.map { tokenizer.decode([$0]).debugDescription }.joined(separator: " ")) }
    }
}
