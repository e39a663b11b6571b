// Compute kernels in C. For now: host measurements for `modellens profiles --measure`
// and the singular values behind the effective-rank analysis (LAPACK via OpenBLAS).
#ifndef MODELLENS_CKERNELS_H
#define MODELLENS_CKERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Peak single-precision FMA rate of one core, in GFLOP/s, from independent
/// fused multiply-add chains in registers (AVX-512 when the CPU has it, else AVX2+FMA,
/// else scalar). Runs for about `seconds`. `isa` receives "avx512", "avx2" or "scalar".
double mlk_fma_peak_gflops(double seconds, const char **isa);

/// OpenBLAS sgemm rate for n x n x n on `threads` threads, in GFLOP/s (best of `reps`).
double mlk_sgemm_gflops(int n, int reps, int threads);

/// Streaming bandwidth of a triad a = b + s*c over arrays of `bytes` each, in GB/s
/// (3 arrays counted, best of `reps`).
double mlk_triad_gbps(size_t bytes, int reps);

/// Singular values of the m x n row-major matrix `a` (copied; not modified), largest
/// first, into `s` (min(m, n) values). Returns 0 on success.
int mlk_singular_values(const float *a, int m, int n, float *s);

#ifdef __cplusplus
}
#endif
#endif
