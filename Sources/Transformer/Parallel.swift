import Dispatch
import Foundation

/// Row-parallel loops for the elementwise work between BLAS calls (softmax, SwiGLU), which
/// would otherwise run on one core while the others wait.
enum Parallel {
    static let cores = ProcessInfo.processInfo.activeProcessorCount

    /// Calls `body` for every row in 0..<count, rows interleaved across the cores (so causal
    /// rows of growing length balance out). Small jobs stay on the calling thread.
    static func rows(_ count: Int, cost: Int, _ body: (Int) -> Void) {
        let workers = min(cores, count)
        if workers < 2 || cost < 32_768 {
            for row in 0 ..< count { body(row) }
            return
        }
        withoutActuallyEscaping(body) { body in
            nonisolated(unsafe) let body = body
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                for row in stride(from: worker, to: count, by: workers) { body(row) }
            }
        }
    }
}
