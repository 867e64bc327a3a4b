import COpenBLAS
import Checkpoint
import Evaluator
import Foundation
import Transformer

/// The runtime on the shipped model: decode speed against the memory-bandwidth bound,
/// prefill against the sgemm peak, both against PyTorch — all measured in this run.
enum RuntimeBenchmark {
    static func run(gguf: String, threads: Int) throws {
        BLASThreads.count = threads
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("hub-bench-model-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        _ = try GGUFConverter.convert(GGUFFile(path: gguf), to: scratch)
        print("runtime on \(scratch.lastPathComponent) with \(threads) BLAS threads")

        // 1. Decode first, so the process's peak RSS is the runtime's own.
        let model = try LlamaModel(directory: scratch)
        let weightBytes = model.weights.weightBytes
        let prompt = Array(1000 ..< 1016)
        let newTokens = 128
        _ = try model.generate(prompt: prompt, options: GenerationOptions(maxNewTokens: 8))
        func decodeRate() throws -> Double {
            let result = try model.generate(prompt: prompt, options: GenerationOptions(maxNewTokens: newTokens))
            return Double(result.tokens.count - 1) / result.decodeSeconds
        }
        _ = try decodeRate()
        let cacheBytes = model.makeCache(capacity: prompt.count + newTokens).byteCount
        let peakRSS = ProcessMemory.peakResidentBytes()

        // 2. Rounds that measure each figure right after its baseline, so that the machine's
        //    drift (shared cores) cancels out of the ratios; medians over the rounds.
        let long = Array(1000 ..< 1512)
        let prefillFLOPs = prefillFlops(model.config, tokens: long.count)
        var rates: [Double] = [], bandwidths: [Double] = [], prefills: [Double] = [], peaks: [Double] = []
        var decodeRatios: [Double] = [], prefillRatios: [Double] = []
        for _ in 0 ..< 5 {
            let bandwidth = max(streamingBandwidth(repetitions: 3), parallelReadBandwidth(repetitions: 3))
            let rate = try decodeRate()
            let peak = sgemmPeak(repetitions: 3)
            let prefill = try time(1) {
                let cache = model.makeCache(capacity: long.count)
                _ = model.logits(try model.forward(long, cache: cache), rows: 1)
            }
            rates.append(rate); bandwidths.append(bandwidth); prefills.append(prefill); peaks.append(peak)
            decodeRatios.append(rate / (bandwidth / Double(weightBytes)))
            prefillRatios.append(prefillFLOPs / prefill / peak)
        }
        let decodeRate = median(rates), prefillSeconds = median(prefills)
        let bandwidth = median(bandwidths), peak = median(peaks)
        let bound = bandwidth / Double(weightBytes)

        // 3. PyTorch, same weights and threads, if it is installed.
        let torch = torchBaseline(modelDirectory: scratch, threads: threads)

        print("")
        print(String(format: "weights streamed per token   %.1f MB;  KV cache for %d positions %.1f MB", Double(weightBytes) / 1e6,
                     prompt.count + newTokens, Double(cacheBytes) / 1e6))
        print("medians of 5 rounds, each measuring a baseline and then the figure it bounds:")
        print(String(format: "memory bandwidth             %.1f GB/s (best of sgemv and a SIMD read) → decode bound %.1f tok/s",
                     bandwidth / 1e9, bound))
        print(String(format: "decode, batch 1              %.1f tok/s; per-round ratio to the bound %.0f%% (goal ≥ 85%%)", decodeRate,
                     100 * median(decodeRatios)))
        print(String(format: "sgemm peak (2048²)           %.1f GFLOP/s", peak / 1e9))
        print(String(format: "prefill 512 tokens           %.3f s, %.1f GFLOP/s; per-round ratio to the peak %.0f%% (goal ≥ 70%%)",
                     prefillSeconds, prefillFLOPs / prefillSeconds / 1e9, 100 * median(prefillRatios)))
        print("per-round ratios             decode " + decodeRatios.map { String(format: "%.2f", $0) }.joined(separator: " ")
              + "   prefill " + prefillRatios.map { String(format: "%.2f", $0) }.joined(separator: " "))
        if let torch {
            print(String(format: "PyTorch %@: decode %.1f tok/s, prefill 512 %.3f s", torch.version, torch.decode, torch.prefill))
            print(String(format: "vs PyTorch                   decode %.2f× (goal ≥ 2×), prefill %.2f× (goal ≥ 1×)",
                         decodeRate / torch.decode, torch.prefill / prefillSeconds))
        } else {
            print("vs PyTorch                   not measured: python3 with torch and transformers is not installed")
        }
        let rssLimit = 1.2 * Double(weightBytes) + Double(cacheBytes)
        print(String(format: "peak RSS while decoding      %.1f MB = %.2f× weights (limit 1.2× weights + KV cache = %.1f MB)",
                     Double(peakRSS) / 1e6, Double(peakRSS) / Double(weightBytes), rssLimit / 1e6))
    }

    /// FLOPs a forward pass over `tokens` positions performs, with logits for the last one:
    /// every block matrix once per token (2 per weight), attention scores and mixing over the
    /// query blocks × visible keys the kernels compute (2 · rows · keys · headDim per head,
    /// twice), the head once.
    static func prefillFlops(_ config: LlamaConfig, tokens: Int) -> Double {
        let t = Double(tokens)
        let block = LlamaModel.attentionBlockRows
        let attentionPairs = stride(from: 0, to: tokens, by: block).reduce(0.0) { sum, start in
            let rows = min(block, tokens - start)
            return sum + Double(rows * (start + rows))
        }
        var flops = 0.0
        for s in config.layerShapes {
            let q = s.attentionHeads * s.headDim, kv = s.keyValueHeads * s.headDim
            let linear = s.attentionHeads > 0 ? (q + 2 * kv) * s.inputWidth + s.attentionOutputWidth * q : 0
            let mlp = 3 * s.intermediateSize * s.attentionOutputWidth
            flops += 2 * t * Double(linear + mlp)
            flops += 2 * 2 * attentionPairs * Double(s.headDim * s.attentionHeads)
        }
        return flops + 2 * Double(config.vocabSize * config.finalWidth)
    }

    /// Bytes per second that sgemv streams through a matrix far larger than the caches: the
    /// best of several runs, so that a noisy machine makes the bound higher, never lower.
    static func streamingBandwidth(repetitions: Int) -> Double {
        let rows = 8192, columns = 16384  // 512 MiB
        let matrix = FloatBuffer(count: rows * columns, zeroed: false)
        for i in stride(from: 0, to: rows * columns, by: 1024) { matrix.pointer[i] = 1 }
        let x = FloatBuffer(count: columns), y = FloatBuffer(count: rows)
        let seconds = fastest(repetitions) {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(rows), Int32(columns), 1, matrix.pointer, Int32(columns), x.pointer, 1, 0, y.pointer, 1)
        }
        return Double(rows * columns * 4) / seconds
    }

    /// Bytes per second that all cores together read from a 1 GiB buffer, summing it with
    /// SIMD loads: the plain streaming ceiling any decode step is under.
    static func parallelReadBandwidth(repetitions: Int) -> Double {
        let count = 256 << 20
        let buffer = FloatBuffer(count: count, zeroed: true)
        let workers = ProcessInfo.processInfo.activeProcessorCount
        let chunk = count / workers
        nonisolated(unsafe) let base = buffer.pointer
        let seconds = fastest(repetitions) {
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                var sums = SIMD16<Float>(repeating: 0)
                var p = UnsafeRawPointer(base + worker * chunk)
                let end = p + chunk * 4
                while p < end {
                    sums += p.loadUnaligned(as: SIMD16<Float>.self)
                    p += 64
                }
                if sums.sum() == .infinity { print("") }  // keeps the loop from being optimized away
            }
        }
        return Double(count * 4) / seconds
    }

    /// The best of several square sgemm runs.
    static func sgemmPeak(repetitions: Int) -> Double {
        let n = 2048
        let a = FloatBuffer(count: n * n), b = FloatBuffer(count: n * n), c = FloatBuffer(count: n * n)
        let seconds = fastest(repetitions) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(n), Int32(n), 1, a.pointer, Int32(n), b.pointer, Int32(n), 0, c.pointer, Int32(n))
        }
        return 2 * Double(n * n * n) / seconds
    }

    static func torchBaseline(modelDirectory: URL, threads: Int) -> (decode: Double, prefill: Double, version: String)? {
        guard let object = pythonBaseline("torch_runtime.py", [modelDirectory.path, String(threads)]),
              let decode = object["decode_tokens_per_second"] as? Double, let prefill = object["prefill_512_seconds"] as? Double else {
            return nil
        }
        return (decode, prefill, object["torch"] as? String ?? "?")
    }
}
