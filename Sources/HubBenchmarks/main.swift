import Foundation

// Benchmarks, separate from the tests: each prints its figures beside baselines measured in
// the same run.
//
//   swift run -c release HubBenchmarks [load|runtime|all] [--threads N] [--gguf PATH]
//   swift run -c release HubBenchmarks variants --base DIR VARIANT_DIR...
//   swift run -c release HubBenchmarks quantized [--threads N] [--rounds 5] [--loss-documents 101]
//   swift run -c release HubBenchmarks training [--threads N] [--model DIR] [--rounds 3] [--steps 2]
//     (PyTorch baseline: HUB_TORCH_PYTHON=python-with-torch-and-safetensors)
//   swift run -c release HubBenchmarks populate --data-dir DIR --variants N   (for benchmarks/registry.sh)

let arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}
let cache = ProcessInfo.processInfo.environment["HUB_CACHE"].map { URL(fileURLWithPath: $0) }
    ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/compression-hub")
let gguf = option("--gguf") ?? cache.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
let threads = option("--threads").flatMap(Int.init) ?? ProcessInfo.processInfo.activeProcessorCount
let which = arguments.first { ["load", "runtime", "variants", "populate", "training", "quantized", "all"].contains($0) } ?? "all"

do {
    if which == "populate" {
        guard let directory = option("--data-dir") else { throw BenchmarkUsage("populate needs --data-dir DIR") }
        try RegistryPopulation.run(dataDirectory: directory, variants: option("--variants").flatMap(Int.init) ?? 10_000)
        exit(0)
    }
    if which == "variants" {
        guard let base = option("--base") else { throw BenchmarkUsage("variants needs --base DIR") }
        let variants = arguments.dropFirst().filter { $0 != "--base" && $0 != base && $0 != "--threads" && Int($0) == nil }
        try VariantBenchmark.run(base: base, variants: Array(variants), threads: threads)
    }
    if which == "training" {
        try TrainingBenchmark.run(gguf: gguf, model: option("--model"), threads: threads,
                                  rounds: option("--rounds").flatMap(Int.init) ?? 3, steps: option("--steps").flatMap(Int.init) ?? 2)
        exit(0)
    }
    if which == "quantized" {
        try QuantizedBenchmark.run(gguf: gguf, threads: threads, rounds: option("--rounds").flatMap(Int.init) ?? 5,
                                   lossDocuments: option("--loss-documents").flatMap(Int.init) ?? 101)
        exit(0)
    }
    if which == "runtime" || which == "all" { try RuntimeBenchmark.run(gguf: gguf, threads: threads) }
    if which == "all" { print("") }
    if which == "load" || which == "all" { try LoadBenchmark.run(path: gguf) }
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}

struct BenchmarkUsage: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
