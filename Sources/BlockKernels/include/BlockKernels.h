#ifndef HUB_BLOCK_KERNELS_H
#define HUB_BLOCK_KERNELS_H
#include <stddef.h>

/// Bytes of one GGML Q8_0 block (an fp16 scale, then 32 int8) and of one Q4_0 block (an fp16
/// scale, then 16 bytes of nibbles).
enum { hub_q8_0_block_bytes = 34, hub_q4_0_block_bytes = 18 };

/// `columns` floats (a multiple of 32) quantized into Q8_0 blocks at `out` as ggml's reference
/// quantizer does it: d = max|x| / 127 per block of 32, q = round(x / d).
void hub_quantize_row_q8_0(const float *x, int columns, void *out);

/// y[r] (+)= Σ_b d_rb · dx_b · Σ_i q_rbi · qx_bi for r in [first, first + count): weight rows of
/// Q8_0 (or Q4_0) blocks `row_bytes` apart, times an activation row quantized by
/// hub_quantize_row_q8_0. The block dot products are exact integers.
void hub_gemv_q8_0(const void *weights, size_t row_bytes, int columns, int first, int count,
                   const void *x_blocks, float *y, int accumulate);
void hub_gemv_q4_0(const void *weights, size_t row_bytes, int columns, int first, int count,
                   const void *x_blocks, float *y, int accumulate);

/// Which instruction set the products use on this CPU: "avx512-vnni" or "avx2".
const char *hub_block_kernels_isa(void);

#endif
