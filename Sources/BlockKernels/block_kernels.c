// Decoding one token with quantized weights multiplies every weight matrix by one activation
// row. Widening each int8 weight to fp32 and multiplying by an fp32 activation (what this
// module did first) costs a sign-extend, a convert and an FMA per eight weights, and ran at a
// quarter of the bytes per second fp32 weights stream: Q8_0 decoded slower than fp32. So, as
// llama.cpp does, the activation row is quantized once to Q8_0 blocks (32 values, one scale)
// and each block product is an exact integer dot product of 32 int8 pairs: two instructions
// (AVX2 maddubs + madd, or one AVX-512 VNNI dpbusd), then one FMA of the two scales.
//
// The cost is in the numerics: the activation is rounded to 8 bits per block (relative error
// up to 1/254 of the block's largest value), so a decode step no longer equals the product
// with the dequantized weights to fp32 rounding; the tests bound the difference, and a
// prompt (several rows, tiles of dequantized weights and sgemm) keeps fp32 activations.
//
// Built for AVX2 + FMA + F16C (Package.swift), which every machine of this project's kind has;
// the VNNI variant is chosen at run time where the CPU has it.
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include "BlockKernels.h"

typedef struct { uint16_t d; int8_t q[32]; } __attribute__((packed)) block_q8_0;
typedef struct { uint16_t d; uint8_t q[16]; } __attribute__((packed)) block_q4_0;

void hub_quantize_row_q8_0(const float *x, int columns, void *out) {
    block_q8_0 *y = out;
    for (int b = 0; b < columns / 32; b++) {
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[32 * b + i]));
        const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        y[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        for (int i = 0; i < 32; i++) y[b].q[i] = (int8_t)roundf(x[32 * b + i] * id);
    }
}

static inline float scale(uint16_t h) { return _cvtsh_ss(h); }

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// The 32 weights of a block as signed bytes: Q8_0 as stored; Q4_0's nibbles (byte i holds
// weight i low and weight 16 + i high) less 8.
static inline __m256i weights_q8_0(const block_q8_0 *b) { return _mm256_loadu_si256((const __m256i *)b->q); }
static inline __m256i weights_q4_0(const block_q4_0 *b) {
    const __m128i bytes = _mm_loadu_si128((const __m128i *)b->q);
    const __m256i nibbles = _mm256_and_si256(
        _mm256_set_m128i(_mm_srli_epi16(bytes, 4), bytes), _mm256_set1_epi8(0x0F));
    return _mm256_sub_epi8(nibbles, _mm256_set1_epi8(8));
}

// Σ w_i·x_i over 32 int8 pairs, in eight int32 lanes. maddubs multiplies unsigned by signed
// bytes, so |w| meets x with w's sign; no pair sum overflows int16 (2 · 127 · 127 < 32767).
static inline __m256i dot_avx2(__m256i w, __m256i x) {
    const __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}
__attribute__((target("avx512f,avx512vl,avx512bw,avx512vnni")))
static inline __m256i dot_vnni(__m256i w, __m256i x) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
}

// One row loop per (block type, dot product). Two accumulators hide the FMA latency. The
// hardware prefetcher alone streamed 6.8 GB/s on one core; asking for the bytes 4 KiB ahead
// reached 11.2 (a standalone loop over 117 MB of Q8_0 rows; 2 KiB: 10.8, 1 KiB: 9.4).
// Prefetching past the end of the weights is harmless: a prefetch never faults.
#define PREFETCH 4096
#define GEMV(NAME, BLOCK, WEIGHTS, DOT, ATTRIBUTES)                                               \
    ATTRIBUTES static void NAME(const void *weights, size_t row_bytes, int columns, int first,      \
                                int count, const void *x_blocks, float *y, int accumulate) {       \
        const int blocks = columns / 32;                                                           \
        const block_q8_0 *x = x_blocks;                                                            \
        for (int r = first; r < first + count; r++) {                                              \
            const BLOCK *w = (const BLOCK *)((const char *)weights + (size_t)r * row_bytes);       \
            __m256 even = _mm256_setzero_ps(), odd = _mm256_setzero_ps();                          \
            int b = 0;                                                                             \
            for (; b + 1 < blocks; b += 2) {                                                       \
                _mm_prefetch((const char *)&w[b] + PREFETCH, _MM_HINT_T0);                         \
                _mm_prefetch((const char *)&w[b] + PREFETCH + 64, _MM_HINT_T0);                    \
                const __m256i p0 = DOT(WEIGHTS(&w[b]), _mm256_loadu_si256((const __m256i *)x[b].q));         \
                const __m256i p1 = DOT(WEIGHTS(&w[b + 1]), _mm256_loadu_si256((const __m256i *)x[b + 1].q)); \
                even = _mm256_fmadd_ps(_mm256_set1_ps(scale(w[b].d) * scale(x[b].d)), _mm256_cvtepi32_ps(p0), even); \
                odd = _mm256_fmadd_ps(_mm256_set1_ps(scale(w[b + 1].d) * scale(x[b + 1].d)), _mm256_cvtepi32_ps(p1), odd); \
            }                                                                                      \
            if (b < blocks) {                                                                      \
                const __m256i p0 = DOT(WEIGHTS(&w[b]), _mm256_loadu_si256((const __m256i *)x[b].q));         \
                even = _mm256_fmadd_ps(_mm256_set1_ps(scale(w[b].d) * scale(x[b].d)), _mm256_cvtepi32_ps(p0), even); \
            }                                                                                      \
            const float total = hsum(_mm256_add_ps(even, odd));                                    \
            y[r] = accumulate ? y[r] + total : total;                                              \
        }                                                                                          \
    }

#define VNNI __attribute__((target("avx512f,avx512vl,avx512bw,avx512vnni")))
GEMV(gemv_q8_0_avx2, block_q8_0, weights_q8_0, dot_avx2, )
GEMV(gemv_q4_0_avx2, block_q4_0, weights_q4_0, dot_avx2, )
GEMV(gemv_q8_0_vnni, block_q8_0, weights_q8_0, dot_vnni, VNNI)
GEMV(gemv_q4_0_vnni, block_q4_0, weights_q4_0, dot_vnni, VNNI)

static int has_vnni(void) {
    static int known = -1;
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
    }
    return known;
}

const char *hub_block_kernels_isa(void) { return has_vnni() ? "avx512-vnni" : "avx2"; }

typedef void (*row_loop)(const void *, size_t, int, int, int, const void *, float *, int);

static row_loop loop_for(int type) {
    if (type == HUB_Q8_0) return has_vnni() ? gemv_q8_0_vnni : gemv_q8_0_avx2;
    return has_vnni() ? gemv_q4_0_vnni : gemv_q4_0_avx2;
}

// The threads. A decode step makes about seven GEMVs per block, over 200 a token, each a few
// tens of microseconds of work; waking a worker through the kernel (Dispatch's
// concurrentPerform, a futex each time) cost more than the products themselves: two threads
// decoded slower than one. So, as ggml and OpenBLAS do, helpers stay awake between products:
// each spins on a generation counter for up to SPIN_NS after its last job, then sleeps on a
// condition variable, so that an idle process (or sgemm's own threads, during a prompt)
// gets the cores back. One product runs at a time; the caller takes the first stretch of rows.

#define MAX_HELPERS 63
#define SPIN_NS 200000

static struct {
    row_loop loop;
    const void *weights, *x_blocks;
    size_t row_bytes;
    int columns, rows, accumulate, parts;
    float *y;
} job;
static atomic_uint generation;
static atomic_int pending;
static int helpers;
static unsigned born[MAX_HELPERS + 1];
static pthread_mutex_t submit = PTHREAD_MUTEX_INITIALIZER, sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;

static void run_part(int part) {
    const int chunk = (job.rows + job.parts - 1) / job.parts, start = part * chunk;
    const int end = start + chunk < job.rows ? start + chunk : job.rows;
    if (start < end) job.loop(job.weights, job.row_bytes, job.columns, start, end - start, job.x_blocks, job.y, job.accumulate);
}

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *helper(void *argument) {
    const int part = (int)(intptr_t)argument;
    // The generation when this helper was made (under `submit`, before the product that made
    // it was posted), not when it first runs: it may first run after that product was posted.
    unsigned seen = born[part];
    for (;;) {
        unsigned current;
        const long long deadline = now_ns() + SPIN_NS;
        for (int spins = 0; (current = atomic_load_explicit(&generation, memory_order_acquire)) == seen; spins++) {
            _mm_pause();
            if ((spins & 255) == 255 && now_ns() > deadline) {
                pthread_mutex_lock(&sleep_lock);
                while ((current = atomic_load_explicit(&generation, memory_order_acquire)) == seen) pthread_cond_wait(&wake, &sleep_lock);
                pthread_mutex_unlock(&sleep_lock);
                break;
            }
        }
        seen = current;
        if (part < job.parts) run_part(part);
        atomic_fetch_sub_explicit(&pending, 1, memory_order_acq_rel);
    }
    return NULL;
}

void hub_gemv(int type, const void *weights, size_t row_bytes, int columns, int rows, const void *x_blocks,
              float *y, int accumulate, int threads) {
    if (threads > MAX_HELPERS + 1) threads = MAX_HELPERS + 1;
    if (threads < 2) {
        loop_for(type)(weights, row_bytes, columns, 0, rows, x_blocks, y, accumulate);
        return;
    }
    pthread_mutex_lock(&submit);
    while (helpers < threads - 1) {
        pthread_t thread;
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
        born[helpers + 1] = atomic_load_explicit(&generation, memory_order_relaxed);
        if (pthread_create(&thread, &attributes, helper, (void *)(intptr_t)(helpers + 1)) != 0) break;
        helpers++;
    }
    job.loop = loop_for(type);
    job.weights = weights; job.x_blocks = x_blocks; job.row_bytes = row_bytes;
    job.columns = columns; job.rows = rows; job.accumulate = accumulate; job.y = y;
    job.parts = threads < helpers + 1 ? threads : helpers + 1;
    atomic_store_explicit(&pending, helpers, memory_order_relaxed);
    pthread_mutex_lock(&sleep_lock);
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&sleep_lock);
    run_part(0);
    while (atomic_load_explicit(&pending, memory_order_acquire) > 0) _mm_pause();
    pthread_mutex_unlock(&submit);
}
