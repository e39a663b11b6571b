// The NHWC convolutions' GEMM for short sums (k <= MLK_GEMM_SHORT_K) on a core that issues one
// 512-bit FMA a cycle (mlk_fma512_pipes_: AMD Zen 4): y[rows, o] = act(a[rows, k] * W^T + bias
// (+ res)), W as the 32-column panels of mlk_weight_panels_pack, read 16 columns at a time.
//
// The packed GEMM's 12 x 32 tile (24 sums) is sized to keep two FMA pipes busy. With one pipe, 12
// sums hide the FMA latency, and the smaller tile's set-up and stores overlap its neighbours' work:
// a stand-alone tile ran at 107-116 GFLOP/s for k = 16-32 where the 12 x 32 one ran at 73-95 (1
// thread, in cache). Through the packed GEMM's generic tile, whose epilogue (bias by row or column,
// channel scale, map, partial sums) is tested at run time, the same split gained nothing; here
// each tile's tests are made once, outside its loops.
//
// Each output is the bias plus its products in k order, then the residual, then the activation:
// the packed GEMM's order (but for its 48 + 1 and 1-4-column end tiles, which sum lane-wise), so
// both give the same bits for widths of 32q, 32q + 5..16 and 32q + 18..31.
#include "avx512.h"

#if MLK_AVX512_BUILD

#define SHORT_MR 12

// Rows [0, MR) by the 16 columns at b (a panel's half: row q at b + 32q); `full`: all 16 columns
// are real (plain loads and stores), else those in m.
AVX512 static inline __attribute__((always_inline)) void short_tile(const int MR, const int full, int k, const float *a,
                                                                    long lda, const float *b, __m512 init, const float *res,
                                                                    float *y, long ldy, __mmask16 m, vclamp cl) {
  __m512 acc[SHORT_MR];
#pragma clang loop unroll(full)
  for (int i = 0; i < MR; i++) acc[i] = init;
#pragma clang loop unroll(disable)
  for (int q = 0; q < k; q++) {
    const __m512 bv = _mm512_loadu_ps(b + (size_t)q * 32);
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[(size_t)i * lda + q]), bv, acc[i]);
  }
  if (res) {
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++)
      acc[i] = _mm512_add_ps(acc[i], full ? _mm512_loadu_ps(res + (size_t)i * ldy) : _mm512_maskz_loadu_ps(m, res + (size_t)i * ldy));
  }
  if (cl.on) {
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) acc[i] = _mm512_max_ps(acc[i], cl.lo);
    if (cl.upper) {
#pragma clang loop unroll(full)
      for (int i = 0; i < MR; i++) acc[i] = _mm512_min_ps(acc[i], cl.hi);
    }
  }
#pragma clang loop unroll(full)
  for (int i = 0; i < MR; i++) {
    if (full) _mm512_storeu_ps(y + (size_t)i * ldy, acc[i]);
    else _mm512_mask_storeu_ps(y + (size_t)i * ldy, m, acc[i]);
  }
}

#define SHORT_CASE(R) \
  case R: \
    if (full) short_tile(R, 1, k, a, lda, b, init, res, y, ldy, m, cl); \
    else short_tile(R, 0, k, a, lda, b, init, res, y, ldy, m, cl); \
    break;

AVX512 static void short_dispatch(int mr, int full, int k, const float *a, long lda, const float *b, __m512 init,
                                  const float *res, float *y, long ldy, __mmask16 m, vclamp cl) {
  switch (mr) {
    SHORT_CASE(12) SHORT_CASE(11) SHORT_CASE(10) SHORT_CASE(9) SHORT_CASE(8) SHORT_CASE(7)
    SHORT_CASE(6) SHORT_CASE(5) SHORT_CASE(4) SHORT_CASE(3) SHORT_CASE(2) SHORT_CASE(1)
    default: break;
  }
}

int mlk_gemm_short_ok_(int k) { return k <= MLK_GEMM_SHORT_K && mlk_use_avx512_() && mlk_fma512_pipes_() == 1; }

// Strips of 12 rows, each across all the columns (its 12 x k inputs stay in L1; a panel's k x 32
// floats, 8 KB at most, do too).
AVX512 void mlk_gemm_short_avx512_(int rows, int o, int k, const float *a, long lda, const float *panels, const float *bias,
                                   const float *res, float *y, long ldy, mlk_epilogue act) {
  const vclamp cl = clamp_of(act);
  for (int r = 0; r < rows; r += SHORT_MR) {
    const int mr = rows - r < SHORT_MR ? rows - r : SHORT_MR;
    const float *ar = a + (size_t)r * lda;
    for (int c = 0; c < o; c += 16) {
      const int n = o - c < 16 ? o - c : 16;
      const __mmask16 m = (__mmask16)(n == 16 ? 0xFFFF : (1u << n) - 1);
      const float *b = panels + (size_t)(c / 32) * k * 32 + c % 32;
      const __m512 init = !bias ? _mm512_setzero_ps() : n == 16 ? _mm512_loadu_ps(bias + c) : _mm512_maskz_loadu_ps(m, bias + c);
      short_dispatch(mr, n == 16, k, ar, lda, b, init, res ? res + (size_t)r * ldy + c : NULL, y + (size_t)r * ldy + c, ldy, m, cl);
    }
  }
}

#endif
