import Dispatch
import Foundation

/// Row-parallel loops for the elementwise work between BLAS calls (softmax, SwiGLU, the
/// training pass's loss and optimizer), which would otherwise run on one core while the
/// others wait. They use as many threads as BLAS is given, so `--threads 1` means one core.
public enum Parallel {
    /// Calls `body` for every row in 0..<count, rows interleaved across the threads (so causal
    /// rows of growing length balance out). Small jobs stay on the calling thread. Each row
    /// must write only its own outputs; results that are summed are summed by the caller in
    /// row order, so the outcome does not depend on the thread count.
    public static func rows(_ count: Int, cost: Int, _ body: (Int) -> Void) {
        let workers = min(BLASThreads.count, count)
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

    /// Calls `body` for 0..<count cut into consecutive ranges of `size` elements (the last
    /// shorter), spread over the threads as `rows` spreads rows: for elementwise loops, and
    /// for sums whose partials must be fixed by the ranges rather than by the threads.
    public static func chunks(_ count: Int, size: Int, _ body: (Range<Int>) -> Void) {
        rows((count + size - 1) / size, cost: count) { part in body(part * size ..< min(count, (part + 1) * size)) }
    }
}
