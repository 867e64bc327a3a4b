import BlockKernels
import Checkpoint
import Dispatch

/// Products with weights kept in GGML's Q8_0 or Q4_0 blocks (32 weights and one fp16 scale per
/// block), never dequantized as a whole. Decoding is bound by the bytes it streams: a Q8_0
/// block is 34 bytes for 32 weights (fp32: 128), a Q4_0 block 18, so a decode step reads a
/// quarter or an eighth of what fp32 reads, and the arithmetic to widen the integers hides
/// behind the memory traffic.
///
/// - One row (decode): a GEMV that streams each block once, rows split across the threads BLAS
///   is given; per row, one SIMD accumulator of q·x·d, summed at the end.
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

    @inline(__always) private static func scale(_ block: UnsafeRawPointer) -> Float {
        Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self)))
    }

    /// Rows [first, first + count) widened to fp32 into `out` ([count, columns]), bit for bit
    /// as `Dequantizer` (and ggml) widen them; large tiles are split across the BLAS threads.
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

    private static func dequantizeRows(_ w: QuantizedMatrix, rows first: Int, count: Int, into out: UnsafeMutablePointer<Float>) {
        let blocks = w.columns / 32
        for r in 0 ..< count {
            var row = w.blocks + (first + r) * w.rowBytes
            let o = out + r * w.columns
            for b in 0 ..< blocks {
                let d = scale(row)
                let ob = o + b * 32
                if w.type == .q8_0 {
                    for i in 0 ..< 32 { ob[i] = Float(row.load(fromByteOffset: 2 + i, as: Int8.self)) * d }
                    row += 34
                } else {
                    for i in 0 ..< 16 {
                        let byte = row.load(fromByteOffset: 2 + i, as: UInt8.self)
                        ob[i] = Float(Int(byte & 0x0F) - 8) * d
                        ob[i + 16] = Float(Int(byte >> 4) - 8) * d
                    }
                    row += 18
                }
            }
        }
    }
}
