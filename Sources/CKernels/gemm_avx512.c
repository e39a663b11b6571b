// A single-precision GEMM for AVX-512, used by the convolutions when the CPU has it.
//
// Debian's OpenBLAS 0.3.21 runs its AVX2 (Haswell) kernels on this class of CPU: about
// 90-110 GFLOP/s per core where 512-bit FMA chains reach about 235. This kernel computes
// C = A * B with a 12 x 32 register tile (24 accumulators of 16 floats): per step of k it
// loads one row of 32 B values (two vectors), broadcasts 12 A values and issues 24 FMAs.
//
// Blocking: k in blocks of KC = 256. For each block and each 12-row strip of A, the strip is
// copied into a small k-major buffer (12 x 256 floats, L1-resident), then multiplied with every
// 32-column panel of B. B arrives already packed in panels (the convolution writes its im2col
// straight into that form), so weights are read where they lie and never repacked.
//
// Every element of C is the bias plus its products summed in k order, whatever the tiling or
// thread count, so results do not depend on how work is shared out.
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

#define MR 12
#define NR 32
#define KC 256
#define AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,fma")))

// C[0..mr) x [0..32) of one tile: acc = (first ? bias : C) + sum_k a[k][r] * b[k][*].
AVX512 static inline __attribute__((always_inline)) void micro(const int mr, int kc, const float *restrict ap, long lda,
                                                               const float *restrict bp, float *restrict c, long ldc,
                                                               __mmask16 m0, __mmask16 m1, int first, int last,
                                                               const float *bias, mlk_epilogue act) {
  __m512 c0[MR], c1[MR];
#pragma clang loop unroll(full)
  for (int r = 0; r < mr; r++) {
    if (first) {
      c0[r] = c1[r] = bias ? _mm512_set1_ps(bias[r]) : _mm512_setzero_ps();
    } else {
      c0[r] = _mm512_maskz_loadu_ps(m0, c + r * ldc);
      c1[r] = _mm512_maskz_loadu_ps(m1, c + r * ldc + 16);
    }
  }
  for (int k = 0; k < kc; k++) {
    const __m512 b0 = _mm512_loadu_ps(bp + (long)k * NR), b1 = _mm512_loadu_ps(bp + (long)k * NR + 16);
#pragma clang loop unroll(full)
    for (int r = 0; r < mr; r++) {
      const __m512 av = _mm512_set1_ps(ap[r * lda + k]);
      c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
    }
  }
  if (last && act.kind != 0 && act.kind != 4) {
    float lo = act.kind == 5 ? act.lo : (act.kind == 3 ? -1.0f : 0.0f);
    float hi = act.kind == 5 ? act.hi : (act.kind == 2 ? 6.0f : (act.kind == 3 ? 1.0f : 0.0f));
    const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    // As mlk_activate: max(x, lo) then min(., hi); a NaN becomes lo (max returns its second operand).
#pragma clang loop unroll(full)
    for (int r = 0; r < mr; r++) {
      c0[r] = _mm512_max_ps(c0[r], vlo);
      c1[r] = _mm512_max_ps(c1[r], vlo);
      if (act.kind != 1) {
        c0[r] = _mm512_min_ps(c0[r], vhi);
        c1[r] = _mm512_min_ps(c1[r], vhi);
      }
    }
  }
#pragma clang loop unroll(full)
  for (int r = 0; r < mr; r++) {
    _mm512_mask_storeu_ps(c + r * ldc, m0, c0[r]);
    _mm512_mask_storeu_ps(c + r * ldc + 16, m1, c1[r]);
  }
}

#define MICRO_CASE(R) \
  case R: micro(R, kc, ap, lda, bp, c, ldc, m0, m1, first, last, bias, act); break;

AVX512 static void micro_dispatch(int mr, int kc, const float *ap, long lda, const float *bp, float *c, long ldc, __mmask16 m0,
                                  __mmask16 m1, int first, int last, const float *bias, mlk_epilogue act) {
  switch (mr) {
    MICRO_CASE(12) MICRO_CASE(11) MICRO_CASE(10) MICRO_CASE(9) MICRO_CASE(8) MICRO_CASE(7)
    MICRO_CASE(6) MICRO_CASE(5) MICRO_CASE(4) MICRO_CASE(3) MICRO_CASE(2) MICRO_CASE(1)
    default: break;
  }
}

AVX512 void mlk_gemm_packed_avx512_(int m, int width, int k, const float *a, long lda, const float *bpanels, float *c,
                                    long ldc, const float *bias, mlk_epilogue act) {
  for (int pc = 0; pc < k; pc += KC) {
    const int kc = k - pc < KC ? k - pc : KC;
    const int first = pc == 0, last = pc + kc == k;
    for (int ir = 0; ir < m; ir += MR) {
      const int mr = m - ir < MR ? m - ir : MR;
      for (int jr = 0; jr < width; jr += NR) {
        const int nr = width - jr < NR ? width - jr : NR;
        const __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
        const __mmask16 m1 = nr >= 32 ? 0xFFFF : (nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1));
        micro_dispatch(mr, kc, a + (long)ir * lda + pc, lda, bpanels + (long)(jr / NR) * k * NR + (long)pc * NR, c + (long)ir * ldc + jr, ldc, m0,
                       m1, first, last, bias ? bias + ir : NULL, act);
      }
    }
  }
}

int mlk_use_avx512_(void) {
  static int cached = -1;
  if (cached < 0) {
    const char *env = getenv("MODELLENS_KERNELS");
    __builtin_cpu_init();
    cached = (env && strcmp(env, "blas") == 0) ? 0
             : (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma"));
  }
  return cached;
}

#else
int mlk_use_avx512_(void) { return 0; }
void mlk_gemm_packed_avx512_(int m, int width, int k, const float *a, long lda, const float *bpanels, float *c,
                             long ldc, const float *bias, mlk_epilogue act) {
  (void)m; (void)width; (void)k; (void)a; (void)lda; (void)bpanels; (void)c; (void)ldc; (void)bias; (void)act;
  abort();
}
#endif
