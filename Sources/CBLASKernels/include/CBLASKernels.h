#ifndef HUB_CBLAS_KERNELS_H
#define HUB_CBLAS_KERNELS_H

/// The OpenBLAS kernel set this process switched to when the library's own detection fell back
/// to kernels older than the CPU ("SkylakeX" or "Haswell"), or NULL when it kept what OpenBLAS
/// chose (see blas_kernels.c).
const char *hub_blas_kernels_override(void);

#endif
