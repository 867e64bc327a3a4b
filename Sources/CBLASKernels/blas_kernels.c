// Why this file exists: OpenBLAS picks its kernels once, when the library loads, from the CPU
// it recognises. Debian 12's OpenBLAS 0.3.21 does not recognise every newer CPU; on a
// 5th-generation Xeon (family 6, model 207) it falls back to its Prescott (SSE3) kernels, and
// sgemm runs at a fifth of the machine's speed (68 against 333 GFLOP/s on 2 cores; sgemv 23
// against 30 GB/s). Every matrix product of the runtime, the evaluator and training goes
// through those kernels.
//
// A constructor in the executable runs after the shared libraries' own, before main and
// before any BLAS call. When OpenBLAS settled for kernels without AVX2 on a CPU that has AVX2
// and FMA (and AVX-512), it names the kernels that fit through OPENBLAS_CORETYPE, the
// library's documented override, and re-runs the library's selection (gotoblas_dynamic_quit
// and gotoblas_dynamic_init, which OpenBLAS exports for exactly this). The variable stays set,
// so child processes (build stages) load the same kernels directly. A user's own
// OPENBLAS_CORETYPE is never touched.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "CBLASKernels.h"

extern char *openblas_get_corename(void);
extern void gotoblas_dynamic_init(void);
extern void gotoblas_dynamic_quit(void);

static const char *chosen = NULL;

const char *hub_blas_kernels_override(void) { return chosen; }

/// OpenBLAS kernel sets older than AVX2.
static int is_pre_avx2(const char *name) {
    static const char *const names[] = {"Katmai", "Coppermine", "Northwood", "Prescott", "Banias", "Atom", "Core2", "Penryn",
                                        "Dunnington", "Nehalem", "Athlon", "Opteron", "Opteron_SSE3", "Barcelona", "Nano",
                                        "Sandybridge", "Bobcat", NULL};
    for (int i = 0; names[i]; i++) {
        if (strcmp(name, names[i]) == 0) return 1;
    }
    return 0;
}

__attribute__((constructor)) static void hub_choose_blas_kernels(void) {
    if (getenv("OPENBLAS_CORETYPE")) return;
    const char *current = openblas_get_corename();
    if (!current || !is_pre_avx2(current)) return;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return;
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512cd");
    const char *kernels = avx512 ? "SkylakeX" : "Haswell";
    setenv("OPENBLAS_CORETYPE", kernels, 1);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    chosen = kernels;
}

// After each call OpenBLAS keeps its worker threads spinning (sched_yield in a loop) for
// 2^28 cycles by default, about a tenth of a second, so that the next call finds them awake.
// Work that runs between BLAS calls on other threads (a training step's SwiGLU, softmax and
// optimizer on Parallel.rows) then shares its cores with spinning workers. The library reads
// the timeout from OPENBLAS_THREAD_TIMEOUT when it starts its workers, so changing it means
// reading the environment again and stopping the workers (the same stop OpenBLAS makes
// before a fork); the next call starts them anew with the new timeout.
extern void openblas_read_env(void);
extern int blas_thread_shutdown_(void);

void hub_blas_set_spin_exponent(int exponent) {
    const char *current = getenv("OPENBLAS_THREAD_TIMEOUT");
    if (exponent <= 0) {
        if (!current) return;
        unsetenv("OPENBLAS_THREAD_TIMEOUT");
    } else {
        char value[16];
        snprintf(value, sizeof value, "%d", exponent);
        if (current && strcmp(current, value) == 0) return;
        setenv("OPENBLAS_THREAD_TIMEOUT", value, 1);
    }
    openblas_read_env();
    blas_thread_shutdown_();
}
