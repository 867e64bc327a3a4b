import Checkpoint
import Compressor
import Evaluator
import Foundation
import Transformer

/// fp32 against Q8_0 and Q4_0 weights of the shipped model in the runtime: decode and 512-token
/// prefill, interleaved round by round so that the machine's drift falls on all three alike,
/// each decode also against the memory bound for its own weight bytes; llama.cpp on GGUFs of
/// the same weights (F32 and Q8_0, bit-identical blocks) in the same rounds when
/// llama-cpp-python is installed; then the held-out loss each costs (optional:
/// --loss-documents N articles of the test split).
enum QuantizedBenchmark {
    static func run(gguf: String, threads: Int, rounds: Int, lossDocuments: Int) throws {
        BLASThreads.count = threads
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("hub-bench-quantized-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let fp32 = scratch.appendingPathComponent("f32")
        _ = try GGUFConverter.convert(GGUFFile(path: gguf), to: fp32)
        let tokenizer = fp32.appendingPathComponent("tokenizer.json")
        let files = ModelFiles(config: fp32.appendingPathComponent("config.json"), weights: fp32.appendingPathComponent("model.safetensors"),
                               tokenizer: tokenizer, tokenizerConfig: nil)
        var models: [(name: String, model: LlamaModel, directory: URL)] = [("f32", try LlamaModel(directory: fp32), fp32)]
        for type in [GGMLType.q8_0, .q4_0] {
            let directory = scratch.appendingPathComponent(QuantizedTensors.name(of: type))
            let start = Date()
            _ = try ModelQuantizer.quantize(files, to: type, destination: directory)
            print(String(format: "quantized to %@ in %.1f s", type.description, Date().timeIntervalSince(start)))
            models.append((type.description, try LlamaModel(directory: directory), directory))
        }
        // The same weights as GGUF for llama.cpp: F32, and Q8_0 blocks equal to ours byte for byte.
        var ggufs: [String: URL] = [:]
        for type in [GGMLType.f32, .q8_0] {
            let file = scratch.appendingPathComponent("model.\(type.description).gguf")
            _ = try GGUFExporter.export(files, as: type, name: "SmolLM2-135M-Instruct", to: file)
            ggufs[type == .f32 ? "f32" : type.description] = file
        }
        let llamaAvailable = pythonBaseline("llama_cpp_runtime.py", [ggufs["f32"]!.path, String(threads), "1"]) != nil
        print("runtime, \(threads) threads, \(rounds) rounds; each round: bandwidth, then every model's decode (128 tokens) and prefill (512)"
              + (llamaAvailable ? ", each followed by llama.cpp on the same weights (f32, q8_0)" : "; llama.cpp not measured (pip install llama-cpp-python)"))

        let prompt = Array(1000 ..< 1016), long = Array(1000 ..< 1512)
        for entry in models { _ = try entry.model.generate(prompt: prompt, options: GenerationOptions(maxNewTokens: 8)) }
        var decode = [String: [Double]](), prefill = [String: [Double]](), ofBound = [String: [Double]]()
        var llamaDecode = [String: [Double]](), llamaPrefill = [String: [Double]](), llamaVersion = "?"
        for _ in 0 ..< rounds {
            let bandwidth = max(RuntimeBenchmark.streamingBandwidth(repetitions: 2), RuntimeBenchmark.parallelReadBandwidth(repetitions: 2))
            for entry in models {
                let result = try entry.model.generate(prompt: prompt, options: GenerationOptions(maxNewTokens: 128))
                let rate = Double(result.tokens.count - 1) / result.decodeSeconds
                decode[entry.name, default: []].append(rate)
                ofBound[entry.name, default: []].append(rate / (bandwidth / Double(entry.model.weights.weightBytes)))
                prefill[entry.name, default: []].append(try time(1) {
                    let cache = entry.model.makeCache(capacity: long.count)
                    _ = entry.model.logits(try entry.model.forward(long, cache: cache), rows: 1)
                })
                if llamaAvailable, let file = ggufs[entry.name],
                   let theirs = pythonBaseline("llama_cpp_runtime.py", [file.path, String(threads), "1"]),
                   let rate = theirs["decode_tokens_per_second"] as? Double, let seconds = theirs["prefill_512_seconds"] as? Double {
                    llamaDecode[entry.name, default: []].append(rate)
                    llamaPrefill[entry.name, default: []].append(seconds)
                    llamaVersion = theirs["llama_cpp_python"] as? String ?? "?"
                }
            }
        }
        func spread(_ values: [Double], _ format: String) -> String { values.map { String(format: format, $0) }.joined(separator: " ") }
        print("")
        print("model  weights/token  decode tok/s (median; rounds)        of its bound   prefill 512 s (median; rounds)")
        let base = median(decode["f32"]!), basePrefill = median(prefill["f32"]!)
        for entry in models {
            let d = decode[entry.name]!, p = prefill[entry.name]!
            print(String(format: "%-5@  %7.1f MB     %6.1f (%@)  %4.0f%%   %.3f (%@)", entry.name, Double(entry.model.weights.weightBytes) / 1e6,
                         median(d), spread(d, "%.1f"), 100 * median(ofBound[entry.name]!), median(p), spread(p, "%.3f")))
        }
        for entry in models.dropFirst() {
            let ratios = zip(decode[entry.name]!, decode["f32"]!).map { $0 / $1 }
            let prefillRatios = zip(prefill["f32"]!, prefill[entry.name]!).map { $0 / $1 }
            print(String(format: "%@ vs f32: decode %.2f× (rounds %@), prefill %.2f× (rounds %@)", entry.name, median(decode[entry.name]!) / base,
                         spread(ratios, "%.2f"), basePrefill / median(prefill[entry.name]!), spread(prefillRatios, "%.2f")))
        }
        if !llamaDecode.isEmpty {
            print("")
            print("llama.cpp (llama-cpp-python \(llamaVersion)), \(threads) threads, on GGUFs of the same weights:")
            for name in ["f32", "Q8_0"] {
                guard let theirs = llamaDecode[name], let theirPrefill = llamaPrefill[name], theirs.count == rounds else { continue }
                let ours = decode[name]!, ourPrefill = prefill[name]!
                print(String(format: "%-5@  llama.cpp decode %.1f tok/s (%@), prefill 512 %.3f s (%@)", name, median(theirs), spread(theirs, "%.1f"),
                             median(theirPrefill), spread(theirPrefill, "%.3f")))
                print(String(format: "       runtime/llama.cpp: decode %.2f× (rounds %@), prefill %.2f× (rounds %@)", median(ours) / median(theirs),
                             spread(zip(ours, theirs).map { $0 / $1 }, "%.2f"), median(theirPrefill) / median(ourPrefill),
                             spread(zip(theirPrefill, ourPrefill).map { $0 / $1 }, "%.2f")))
            }
        }

        guard lossDocuments > 0 else { return }
        let range = XSumCorpus.testRange.lowerBound ..< min(XSumCorpus.testRange.upperBound, XSumCorpus.testRange.lowerBound + lossDocuments)
        let documents = try XSumCorpus.articles(in: cache.appendingPathComponent("bigbench/gem/xsum/task.json"), range: range)
        let words = try BPETokenizer(huggingFaceJSON: tokenizer, tokenizerConfig: nil)
        print("")
        print("held-out loss on xsum articles \(range.lowerBound)..<\(range.upperBound), context 512 (the evaluator's test split):")
        var baseLoss: Double?
        for entry in models {
            let result = try HeldOutLoss(context: 512).evaluate(model: entry.model, tokenizer: words, documents: documents)
            if baseLoss == nil { baseLoss = result.crossEntropy }
            print(String(format: "%-5@  loss %.4f  perplexity %.3f  (%+.2f%% loss vs f32)", entry.name, result.crossEntropy, result.perplexity,
                         100 * (result.crossEntropy / baseLoss! - 1)))
        }
    }
}
