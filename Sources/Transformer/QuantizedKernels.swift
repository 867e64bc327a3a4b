import BlockKernels
import Checkpoint
import Dispatch

/// Products with weights kept in GGML's Q8_0 or Q4_0 blocks (32 weights and one fp16 scale per
/// block), never dequantized as a whole. Decoding is bound by the bytes it streams: a Q8_0
/// block is 34 bytes for 32 weights (fp32: 128), a Q4_0 block 18, so a decode step reads a
/// quarter or an eighth of what fp32 reads.
///
/// - One row (decode): the activation row is quantized to Q8_0 once, then a GEMV streams each
///   weight block once and takes exact int8 dot products (`BlockKernels`, C with AVX2 or
///   AVX-512 VNNI), rows split across the threads BLAS is given (helper threads that stay
///   awake between products; see block_kernels.c). This is llama.cpp's scheme, and its
///   numerics: the activation is rounded to 8 bits per block of 32.
/// - Several rows (prefill, scoring): the weight rows are widened to fp32 a tile at a time into
///   a scratch buffer and multiplied by sgemm, so a prompt still runs at GEMM speed, with fp32
///   activations, while the model's resident memory stays quantized.
enum QuantizedKernels {
    /// y[r] = Σ_b d_rb · dx_b · Σ_i q_rbi · qx_bi (+ y[r] when accumulating), r over every row,
    /// with x quantized to Q8_0 blocks (dx, qx) first.
    static func gemv(_ w: QuantizedMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let columns = w.columns
        // Rows split across the threads BLAS is given, at least 64 rows each.
        let threads = min(BLASThreads.count, max(1, w.rows / 64))
        let type = w.type == .q8_0 ? Int32(HUB_Q8_0) : Int32(HUB_Q4_0)
        withUnsafeTemporaryAllocation(byteCount: columns / 32 * Int(hub_q8_0_block_bytes), alignment: 64) { scratch in
            hub_quantize_row_q8_0(x, Int32(columns), scratch.baseAddress!)
            hub_gemv(type, w.blocks, w.rowBytes, Int32(columns), Int32(w.rows), scratch.baseAddress!, y, accumulate ? 1 : 0, Int32(threads))
        }
    }

    /// The instruction set the one-row products use on this CPU ("avx512-vnni" or "avx2").
    static var instructionSet: String { String(cString: hub_block_kernels_isa()) }

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
