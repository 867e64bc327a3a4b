#ifndef HUB_CBLAS_KERNELS_H
#define HUB_CBLAS_KERNELS_H

/// The OpenBLAS kernel set this process switched to when the library's own detection fell back
/// to kernels older than the CPU ("SkylakeX" or "Haswell"), or NULL when it kept what OpenBLAS
/// chose (see blas_kernels.c).
const char *hub_blas_kernels_override(void);

/// Sets how long OpenBLAS's idle workers spin after a call before they sleep, as 2^exponent
/// cycles (OpenBLAS keeps it within 4...30; its default is 28, about a tenth of a second), or
/// back to the library's default for an exponent of 0 or less. Takes effect from the next BLAS
/// call; must not run while another thread is inside one (see blas_kernels.c).
void hub_blas_set_spin_exponent(int exponent);

#endif
