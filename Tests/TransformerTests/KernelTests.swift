import COpenBLAS
import Foundation
import Testing
@testable import Transformer

@Suite("Kernels and sampling")
struct KernelTests {
    @Test("rmsNorm and swiglu against their formulas")
    func elementwise() {
        let x: [Float] = [1, -2, 3, 0.5, -0.25, 4]
        let weight: [Float] = [1, 2, 0.5, 1, 1, -1]
        var y = [Float](repeating: 0, count: 6)
        Kernels.rmsNorm(x, rows: 2, width: 3, weight: weight, epsilon: 1e-5, into: &y)
        for r in 0 ..< 2 {
            let row = Array(x[r * 3 ..< r * 3 + 3])
            let rms = (row.map { $0 * $0 }.reduce(0, +) / 3 + 1e-5).squareRoot()
            for i in 0 ..< 3 { #expect(abs(y[r * 3 + i] - weight[i] * row[i] / rms) < 1e-6) }
        }
        var gate: [Float] = [-3, 0, 2]
        Kernels.swiglu(&gate, [2, 5, -1], count: 3)
        let expected: [Float] = [-3 / (1 + exp(3)) * 2, 0, 2 / (1 + exp(-2)) * -1]
        for (a, b) in zip(gate, expected) { #expect(abs(a - b) < 1e-6) }
    }

    @Test("a shorter spin for OpenBLAS's workers holds inside the call, BLAS still computes, and it is undone after")
    func spinExponent() {
        #expect(getenv("OPENBLAS_THREAD_TIMEOUT") == nil)
        func product() -> [Float] {
            // 64 × 64 times the identity: large enough for OpenBLAS to use its workers.
            let a = (0 ..< 64 * 64).map { Float($0 % 17) }
            var identity = [Float](repeating: 0, count: 64 * 64)
            for i in 0 ..< 64 { identity[i * 64 + i] = 1 }
            var c = [Float](repeating: -1, count: 64 * 64)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 64, 64, 64, 1, a, 64, identity, 64, 0, &c, 64)
            return c == a ? c : []
        }
        let inside = BLASThreads.withSpinExponent(16) { (String(cString: getenv("OPENBLAS_THREAD_TIMEOUT")), product()) }
        #expect(inside.0 == "16")
        #expect(!inside.1.isEmpty, "sgemm after the workers were restarted")
        #expect(getenv("OPENBLAS_THREAD_TIMEOUT") == nil)
        #expect(!product().isEmpty)
        // A user's own setting is left alone.
        setenv("OPENBLAS_THREAD_TIMEOUT", "20", 1)
        defer { unsetenv("OPENBLAS_THREAD_TIMEOUT") }
        #expect(BLASThreads.withSpinExponent(16) { String(cString: getenv("OPENBLAS_THREAD_TIMEOUT")) } == "20")
    }

    @Test("softmax sums to one and log-sum-exp survives huge logits")
    func softmax() {
        var row: [Float] = [1000, 999, 998, -1e9]
        Kernels.softmax(&row, count: 4)
        #expect(abs(row.reduce(0, +) - 1) < 1e-6)
        #expect(abs(row[0] / row[1] - Float(M_E)) < 1e-4)
        let lse = Kernels.logSumExp([1000, 1000], count: 2)
        #expect(abs(lse - (1000 + log(2))) < 1e-9)
    }

    @Test("rope rotates each head's halves by position × θ^(-2i/d) and preserves norms")
    func rope() throws {
        let rope = try RotaryEmbedding(headDim: 4, theta: 100, scaling: nil)
        var v: [Float] = [1, 2, 3, 4, 5, 6, 7, 8]  // two heads
        rope.apply(&v, heads: 2, position: 3)
        for head in 0 ..< 2 {
            let x = (1 ... 4).map { Float(head * 4 + $0) }
            for i in 0 ..< 2 {
                let angle = 3 / pow(100, Float(2 * i) / 4)
                #expect(abs(v[head * 4 + i] - (x[i] * cos(angle) - x[i + 2] * sin(angle))) < 1e-5)
                #expect(abs(v[head * 4 + i + 2] - (x[i + 2] * cos(angle) + x[i] * sin(angle))) < 1e-5)
            }
        }
        #expect(throws: RuntimeError.self) {
            try RotaryEmbedding(headDim: 4, theta: 100, scaling: .init(ropeType: "yarn", factor: 2))
        }
    }

    @Test("greedy picks the argmax; sampling is reproducible per seed and honours top-p")
    func sampling() {
        let logits: [Float] = [0.1, 3, 2.9, -1, 0]
        var greedy = Sampler()
        #expect(greedy.next(logits, count: 5) == 1)
        var narrow = Sampler(temperature: 1, topP: 0.01, seed: 9)
        #expect((0 ..< 50).allSatisfy { _ in narrow.next(logits, count: 5) == 1 })
        var a = Sampler(temperature: 1, topP: 1, seed: 42), b = Sampler(temperature: 1, topP: 1, seed: 42)
        let drawsA = (0 ..< 200).map { _ in a.next(logits, count: 5) }
        let drawsB = (0 ..< 200).map { _ in b.next(logits, count: 5) }
        #expect(drawsA == drawsB)
        #expect(Set(drawsA).isSuperset(of: [1, 2]))
        // Top-p 0.9 keeps tokens 1 and 2 (≈ 0.49 + 0.44 of the mass) and nothing else.
        var nucleus = Sampler(temperature: 1, topP: 0.9, seed: 5)
        #expect(Set((0 ..< 300).map { _ in nucleus.next(logits, count: 5) }) == [1, 2])
    }
}

@Suite("Vectorizable exp")
struct ExpTests {
    @Test("relative error below 3e-7 against libm over the range softmax and SiLU use")
    func accuracy() {
        var worst: Float = 0
        for i in 0 ... 200_000 {
            let x = -87 + Float(i) * (175.0 / 200_000)
            let exact = Foundation.exp(Double(x))
            worst = max(worst, Float(abs(Double(Kernels.exp(x)) - exact) / exact))
        }
        #expect(worst < 3e-7)
        #expect(Kernels.exp(-1000) == 0 || Kernels.exp(-1000) < 1e-37)
        #expect(Kernels.exp(0) == 1)
        // Inputs past the range are clamped, not wrapped through the exponent bits.
        #expect(Kernels.exp(1000) == Kernels.exp(88) && Kernels.exp(88).isFinite && Kernels.exp(88) > 1e38)
        let lanes = Kernels.exp(SIMD8<Float>(-1000, -87.3, -1, 0, 1, 50, 88, 1000))
        #expect((0 ..< 8).allSatisfy { lanes[$0] == Kernels.exp([-1000, -87.3, -1, 0, 1, 50, 88, 1000][$0]) })
    }
}

@Suite("OpenBLAS kernels")
struct BLASKernelTests {
    /// The CPU's feature flags, as the kernel choice must read them.
    static var cpuFlags: Set<String> {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let line = info.split(separator: "\n").first { $0.hasPrefix("flags") } ?? ""
        return Set(line.split(separator: ":").last?.split(separator: " ").map(String.init) ?? [])
    }

    @Test("a CPU with AVX2 and FMA runs OpenBLAS kernels that use them, whatever OpenBLAS's own detection made of it")
    func kernelsFitTheCPU() throws {
        let flags = Self.cpuFlags
        let preAVX2: Set<String> = ["Katmai", "Coppermine", "Northwood", "Prescott", "Banias", "Atom", "Core2", "Penryn", "Dunnington",
                                    "Nehalem", "Athlon", "Opteron", "Opteron_SSE3", "Barcelona", "Nano", "Sandybridge", "Bobcat"]
        let environment = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"]
        if flags.isSuperset(of: ["avx2", "fma"]), environment == nil || BLASKernels.override != nil {
            #expect(!preAVX2.contains(BLASKernels.name), "OpenBLAS runs \(BLASKernels.name) kernels on a CPU with AVX2")
        }
        if let chosen = BLASKernels.override {
            // The switch took: OpenBLAS reports the kernels named, and children inherit the name.
            #expect(BLASKernels.name == chosen && environment == chosen)
            #expect(chosen == (flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"]) ? "SkylakeX" : "Haswell"))
        }
        // Whatever the kernels, a product is still right.
        let a: [Float] = (0 ..< 64 * 48).map { Float($0 % 13) - 6 }, b: [Float] = (0 ..< 48 * 32).map { Float($0 % 7) - 3 }
        var c = [Float](repeating: 0, count: 64 * 32)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 64, 32, 48, 1, a, 48, b, 32, 0, &c, 32)
        for (i, j) in [(0, 0), (17, 5), (63, 31)] {
            let expected = (0 ..< 48).reduce(Float(0)) { $0 + a[i * 48 + $1] * b[$1 * 32 + j] }
            #expect(c[i * 32 + j] == expected)
        }
    }
}
