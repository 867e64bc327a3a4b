import COpenBLAS
import Checkpoint
import Evaluator
import Foundation
import HubCore
import Training
import Transformer

/// Fine-tuning speed on the shipped model (or any model directory): full fine-tuning and LoRA
/// tokens/s, their GFLOP/s against the sgemm peak, and PyTorch CPU full fine-tuning of the
/// same weights at the same threads, sequence length and batch — each round measuring its
/// baselines right before, so the per-round ratios cancel the machine's drift.
///
/// FLOPs are counted as 6N a token for both full fine-tuning and LoRA: this LoRA computes the
/// frozen weights' full gradient and projects it onto A and B (see `LoRAAdapters`), so it does
/// the same matrix work plus a few small products. Attention's T² terms are not counted.
enum TrainingBenchmark {
    static func run(gguf: String, model: String?, threads: Int, rounds: Int, steps: Int) throws {
        BLASThreads.count = threads
        var directory = model.map { URL(fileURLWithPath: $0) }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("hub-bench-train-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        if directory == nil {
            _ = try GGUFConverter.convert(GGUFFile(path: gguf), to: scratch)
            directory = scratch
        }
        let base = try TrainableParameters(directory: directory!)
        let n = Double(base.parameterCount)
        var settings = FineTuneSettings(tokens: steps * 1024)
        settings.sequenceLength = 256
        settings.batchSequences = 4
        let stream = (0 ..< settings.tokens).map { 1000 + ($0 * 7919) % (base.config.vocabSize - 1000) }
        print("fine-tuning \(directory!.lastPathComponent) (\(base.parameterCount) parameters) with \(threads) BLAS threads;"
              + " \(steps) steps of 4 × 256 tokens a measurement, \(rounds) rounds")

        func rate(lora: LoRASettings?, distillation: LanguageModelPass.Distillation? = nil) throws -> Double {
            var parameters = base
            var s = settings
            s.lora = lora
            let outcome = try FineTuner(settings: s).run(&parameters, stream: stream, distillation: distillation)
            return Double(outcome.curve.last!.tokens) / outcome.wallSeconds
        }
        // Distillation from the model itself as teacher: its logits computed with each batch,
        // or its top 32 read from a cache built once (the build timed every round).
        let teacher = try LlamaModel(weights: ModelWeights(config: base.config, tensors: base.tensors))
        let sequences = TeacherLogitCache.sequences(of: stream, count: settings.tokens / 256, length: 256)
        let teacherDigest = SHA256Digest.of(Data("benchmark teacher".utf8))
        // Warm-up (first-touch of every buffer), then the process's peak RSS is a full step's.
        var warm = FineTuneSettings(tokens: 1024)
        warm.sequenceLength = 256
        var parameters = base
        _ = try FineTuner(settings: warm).run(&parameters, stream: stream)
        let peakRSS = ProcessMemory.peakResidentBytes()

        let lora = try LoRASettings(rank: 16)
        var full: [Double] = [], adapters: [Double] = [], torch: [Double] = [], peaks: [Double] = []
        var peakRatios: [Double] = [], torchRatios: [Double] = []
        var live: [Double] = [], cached: [Double] = [], cacheBuild: [Double] = [], cachedRatios: [Double] = []
        var torchVersion = "not measured"
        for round in 1 ... rounds {
            let peak = RuntimeBenchmark.sgemmPeak(repetitions: 3)
            let fullRate = try rate(lora: nil)
            let loraRate = try rate(lora: lora)
            peaks.append(peak); full.append(fullRate); adapters.append(loraRate)
            peakRatios.append(6 * n * fullRate / peak)
            if let baseline = torchBaseline(modelDirectory: directory!, threads: threads, steps: steps) {
                torch.append(baseline.rate); torchRatios.append(fullRate / baseline.rate); torchVersion = baseline.version
            }
            let liveRate = try rate(lora: nil, distillation: .init(teacher: teacher))
            let buildStart = Date()
            let cache = try TeacherLogitCache.build(teacher: teacher, teacherSHA256: teacherDigest, sequences: sequences, k: 32)
            let buildRate = Double(settings.tokens) / Date().timeIntervalSince(buildStart)
            let cachedRate = try rate(lora: nil, distillation: .init(cache: cache))
            live.append(liveRate); cached.append(cachedRate); cacheBuild.append(buildRate); cachedRatios.append(cachedRate / liveRate)
            print(String(format: "  round %d: sgemm %.1f GFLOP/s; full %.1f tok/s (%.0f%% of peak), LoRA r16 %.1f tok/s%@", round, peak / 1e9,
                         fullRate, 100 * 6 * n * fullRate / peak, loraRate,
                         torch.count == round ? String(format: "; PyTorch %.1f tok/s (%.2f×)", torch.last!, torchRatios.last!) : ""))
            print(String(format: "           distillation: teacher per batch %.1f tok/s, top-32 cache %.1f tok/s (%.2f×), cache built at %.1f tok/s",
                         liveRate, cachedRate, cachedRate / liveRate, buildRate))
        }
        func spread(_ values: [Double], scale: Double = 1, format: String = "%.1f") -> String {
            String(format: format, median(values) * scale) + " (" + String(format: format, values.min()! * scale) + "–"
                + String(format: format, values.max()! * scale) + ")"
        }
        print("")
        print("sgemm peak (2048²)               \(spread(peaks, scale: 1e-9)) GFLOP/s")
        print("full fine-tuning                 \(spread(full)) tok/s = \(spread(full, scale: 6 * n / 1e9)) GFLOP/s at 6N a token")
        print("  ratio to the sgemm peak        \(spread(peakRatios, scale: 100, format: "%.0f"))% per round (goal ≥ 50%)")
        print("LoRA rank 16, all projections    \(spread(adapters)) tok/s (6N a token: the same matrix work)")
        print("distillation, teacher per batch  \(spread(live)) tok/s (full fine-tuning, the model as its own teacher)")
        print("  from a top-32 cache            \(spread(cached)) tok/s; \(spread(cachedRatios, format: "%.2f"))× per round")
        print("  building the cache             \(spread(cacheBuild)) tok/s (the teacher's forward pass and top-k, once per token range)")
        if torch.isEmpty {
            print("PyTorch                          not measured: set HUB_TORCH_PYTHON to a python with torch and safetensors")
        } else {
            print("PyTorch \(torchVersion) full         \(spread(torch)) tok/s")
            print("  ours / PyTorch                 \(spread(torchRatios, format: "%.2f"))× per round (goal ≥ 1.5×)")
        }
        let shapes = base.config.layerShapes
        let activationFloats = shapes.reduce(0) { total, s in
            let q = s.attentionHeads * s.headDim, kv = s.keyValueHeads * s.headDim
            return total + 1024 * (3 * s.inputWidth + q * 2 + 2 * kv + 2 * s.attentionOutputWidth + 3 * s.intermediateSize
                                   + 256 * s.attentionHeads)
        }
        let expected = 16 * n + 4 * Double(activationFloats)
        print(String(format: "peak RSS (full fine-tuning)      %.2f GB; weights + gradients + Adam (16 B a parameter) + kept activations = %.2f GB",
                     Double(peakRSS) / 1e9, expected / 1e9))
    }

    /// PyTorch full fine-tuning of the same weights (benchmarks/torch_finetune.py, plain PyTorch,
    /// AdamW), run by `$HUB_TORCH_PYTHON` (default python3).
    static func torchBaseline(modelDirectory: URL, threads: Int, steps: Int) -> (rate: Double, version: String)? {
        guard let object = pythonBaseline("torch_finetune.py", [modelDirectory.path, String(threads), String(steps)]),
              let rate = object["tokens_per_second"] as? Double else { return nil }
        return (rate, object["torch"] as? String ?? "?")
    }
}
