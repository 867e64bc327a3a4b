import COpenBLAS
import Foundation

/// How fast this machine runs the two things the runtime's latency follows: matrix products
/// (prefill is sgemm-bound) and streaming weights from memory (decode is sgemv-bound, so it
/// follows memory bandwidth). A metrics record carries it beside its latency, so that a
/// latency measured on one machine can be scaled to another by a short run of this probe
/// there, instead of being compared as if alike.
public struct MachineSpeed: Codable, Sendable, Equatable {
    /// Single-precision matrix product throughput, GFLOP/s, at the current BLAS threads.
    public let sgemmGFLOPS: Double
    /// Read bandwidth over a buffer far larger than the caches, GB/s.
    public let memoryGBPS: Double

    enum CodingKeys: String, CodingKey { case sgemmGFLOPS = "sgemm_gflops", memoryGBPS = "memory_gbps" }

    public init(sgemmGFLOPS: Double, memoryGBPS: Double) {
        self.sgemmGFLOPS = sgemmGFLOPS
        self.memoryGBPS = memoryGBPS
    }

    /// About half a second: the best of a few rounds of each, as the best round is the one
    /// least disturbed by other work on a shared machine.
    public static func measure(rounds: Int = 5) -> MachineSpeed {
        let n = 512
        let a = [Float](repeating: 0.5, count: n * n), b = [Float](repeating: 0.25, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        var bestGEMM = Double.infinity
        for _ in 0 ..< rounds + 1 {
            let start = DispatchTime.now().uptimeNanoseconds
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(n), Int32(n), 1, a, Int32(n), b, Int32(n), 0, &c, Int32(n))
            bestGEMM = min(bestGEMM, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        // 128 MiB of floats: well past any last-level cache, a few weights' worth of traffic.
        let count = 32 << 20
        let buffer = [Float](repeating: 1, count: count)
        var bestRead = Double.infinity
        var sink: Float = 0
        for _ in 0 ..< rounds {
            let start = DispatchTime.now().uptimeNanoseconds
            sink += cblas_sasum(Int32(count), buffer, 1)
            bestRead = min(bestRead, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        precondition(sink > 0)
        return MachineSpeed(sgemmGFLOPS: 2 * Double(n * n * n) / bestGEMM / 1e9,
                            memoryGBPS: Double(count * MemoryLayout<Float>.size) / bestRead / 1e9)
    }
}
