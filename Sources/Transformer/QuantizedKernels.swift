import BlockKernels
import Checkpoint
import Dispatch

/// Products with weights kept in GGML's Q8_0 or Q4_0 blocks (32 weights and one fp16 scale per
/// block), never dequantized as a whole. Decoding is bound by the bytes it streams: a Q8_0
/// block is 34 bytes for 32 weights (fp32: 128), a Q4_0 block 18, so a decode step reads a
/// quarter or an eighth of what fp32 reads.
///
/// - One row (decode): a GEMV that streams each block once, rows split across the threads BLAS
///   is given (the row loops are `BlockKernels`, compiled for AVX2).
/// - Several rows (prefill, scoring): the weight rows are widened to fp32 a tile at a time into
///   a scratch buffer and multiplied by sgemm, so a prompt still runs at GEMM speed while the
///   model's resident memory stays quantized.
enum QuantizedKernels {
    /// y[r] = Σ_b d_rb · Σ_i q_rbi · x[32b + i] (+ y[r] when accumulating), r over every row.
    static func gemv(_ w: QuantizedMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let rows = w.rows
        let workers = min(BLASThreads.count, max(1, rows / 64))
        nonisolated(unsafe) let x = x, y = y
        let body: @Sendable (Range<Int>) -> Void = { range in
            switch w.type {
            case .q8_0: BlockKernels.q8_0(w.blocks, rowBytes: w.rowBytes, columns: w.columns, rows: range, x, y, accumulate: accumulate)
            default: BlockKernels.q4_0(w.blocks, rowBytes: w.rowBytes, columns: w.columns, rows: range, x, y, accumulate: accumulate)
            }
        }
        if workers < 2 {
            body(0 ..< rows)
            return
        }
        // Contiguous row ranges: each thread streams one stretch of the weights.
        let chunk = (rows + workers - 1) / workers
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let start = worker * chunk
            body(start ..< min(rows, start + chunk))
        }
    }

    /// Rows [first, first + count) widened to fp32 into `out` ([count, columns]) by `Dequantizer`
    /// (bit for bit as ggml widens them); large tiles are split across the BLAS threads.
    static func dequantize(_ w: QuantizedMatrix, rows first: Int, count: Int, into out: UnsafeMutablePointer<Float>) {
        let workers = min(BLASThreads.count, count)
        if workers < 2 || count * w.columns < 65_536 {
            dequantizeRows(w, rows: first, count: count, into: out)
            return
        }
        let chunk = (count + workers - 1) / workers
        nonisolated(unsafe) let out = out
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let start = worker * chunk, n = min(count, start + chunk) - start
            if n > 0 { dequantizeRows(w, rows: first + start, count: n, into: out + start * w.columns) }
        }
    }

    // Rows are contiguous runs of blocks, so a range of them is one call of ggml's reference decoding.
    private static func dequantizeRows(_ w: QuantizedMatrix, rows first: Int, count: Int, into out: UnsafeMutablePointer<Float>) {
        Dequantizer.decode(w.type, w.blocks + first * w.rowBytes, out, blocks: count * w.columns / w.type.blockSize)
    }
}
