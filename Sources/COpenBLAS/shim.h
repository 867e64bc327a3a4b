#include <cblas.h>

// LAPACK's symmetric eigensolver, which OpenBLAS exports (32-bit integers in this build).
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info);

// LAPACK's Cholesky solve of a symmetric positive-definite system (the least-squares repair).
void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda, double *b, const int *ldb, int *info);

// LAPACK's singular values (divide and conquer; jobz "N" for values only), for PruneNet's spectra.
void sgesdd_(const char *jobz, const int *m, const int *n, float *a, const int *lda, float *s, float *u, const int *ldu,
             float *vt, const int *ldvt, float *work, const int *lwork, int *iwork, int *info);

// glibc's malloc tuning, for the training loop's large per-step buffers (see FineTuner).
#include <malloc.h>
