#ifndef HUB_BLOCK_KERNELS_H
#define HUB_BLOCK_KERNELS_H
#include <stddef.h>

/// Bytes of one GGML Q8_0 block (an fp16 scale, then 32 int8) and of one Q4_0 block (an fp16
/// scale, then 16 bytes of nibbles).
enum { hub_q8_0_block_bytes = 34, hub_q4_0_block_bytes = 18 };

/// `columns` floats (a multiple of 32) quantized into Q8_0 blocks at `out` as ggml's reference
/// quantizer does it: d = max|x| / 127 per block of 32, q = round(x / d).
void hub_quantize_row_q8_0(const float *x, int columns, void *out);

/// Block types: GGML's type ids.
enum { HUB_Q4_0 = 2, HUB_Q8_0 = 8 };

/// y[r] (+)= Σ_b d_rb · dx_b · Σ_i q_rbi · qx_bi for r in [0, rows): weight rows of Q8_0 or Q4_0
/// blocks (`type`) `row_bytes` apart, times an activation row quantized by
/// hub_quantize_row_q8_0; the block dot products are exact integers. The rows are split into
/// `threads` contiguous stretches: the caller takes the first, helper threads (started on first
/// use, kept awake briefly between products) the rest. Calls from several threads run one at a time.
void hub_gemv(int type, const void *weights, size_t row_bytes, int columns, int rows, const void *x_blocks,
              float *y, int accumulate, int threads);

/// Which instruction set the products use on this CPU: "avx512-vnni" or "avx2".
const char *hub_block_kernels_isa(void);

#endif
