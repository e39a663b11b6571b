// The sparse 1x1 convolution (sparse.c) over a block of up to 64 pixels with AVX-512, its inputs
// packed by sparse.c (64 floats per channel): for each
// output channel, four vectors of sums; each nonzero weight is broadcast once and multiplies 64
// input pixels of its channel. Two sets of sums take alternate nonzeros so that eight
// multiply-adds are in flight, then add up (a fixed order: the same bits for any threads).
#include "avx512.h"

#if MLK_AVX512_BUILD
// Output channel o over `chunks` vectors (1-4: a short last block sums only the vectors it has).
AVX512 static inline __attribute__((always_inline)) void sparse_row(int chunks, const float *x, const float *values, const int *columns,
                                                                 int k, int end, __m512 *sums) {
  __m512 a[4], b[4];
  for (int c = 0; c < 4; c++) a[c] = b[c] = _mm512_setzero_ps();
  for (; k + 1 < end; k += 2) {
    const float *xa = x + (long)columns[k] * 64, *xc = x + (long)columns[k + 1] * 64;
    const __m512 wa = _mm512_set1_ps(values[k]), wc = _mm512_set1_ps(values[k + 1]);
    for (int c = 0; c < chunks; c++) {
      a[c] = _mm512_fmadd_ps(wa, _mm512_loadu_ps(xa + 16 * c), a[c]);
      b[c] = _mm512_fmadd_ps(wc, _mm512_loadu_ps(xc + 16 * c), b[c]);
    }
  }
  if (k < end) {
    const float *xa = x + (long)columns[k] * 64;
    const __m512 wa = _mm512_set1_ps(values[k]);
    for (int c = 0; c < chunks; c++) a[c] = _mm512_fmadd_ps(wa, _mm512_loadu_ps(xa + 16 * c), a[c]);
  }
  for (int c = 0; c < chunks; c++) sums[c] = _mm512_add_ps(a[c], b[c]);
}

AVX512 void mlk_conv_sparse_block_avx512_(int out_c, long plane, const float *x, const float *values, const int *columns,
                                          const int *starts, const float *bias, const float *scale, const float *res, float *y,
                                          long q0, long q1, mlk_epilogue act) {
  const vclamp clamp = clamp_of(act);
  const long n = q1 - q0;
  __mmask16 m[4];
  for (int c = 0; c < 4; c++) {
    long left = n - 16 * c;
    m[c] = left >= 16 ? 0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
  }
  const int chunks = (int)((n + 15) / 16);
  for (int o = 0; o < out_c; o++) {
    __m512 sums[4];
    switch (chunks) {
    case 4: sparse_row(4, x, values, columns, starts[o], starts[o + 1], sums); break;
    case 3: sparse_row(3, x, values, columns, starts[o], starts[o + 1], sums); break;
    case 2: sparse_row(2, x, values, columns, starts[o], starts[o + 1], sums); break;
    default: sparse_row(1, x, values, columns, starts[o], starts[o + 1], sums); break;
    }
    const __m512 s = _mm512_set1_ps(scale ? scale[o] : 1.0f), b = _mm512_set1_ps(bias ? bias[o] : 0.0f);
    float *yo = y + (long)o * plane + q0;
    const float *ro = res ? res + (long)o * plane + q0 : NULL;
    for (int c = 0; c < chunks; c++) {
      __m512 v = _mm512_fmadd_ps(sums[c], s, b);
      if (ro) v = _mm512_add_ps(v, load16(m[c], ro + 16 * c));
      store16(yo + 16 * c, m[c], apply_clamp(v, clamp));
    }
  }
}
#endif

#if MLK_AVX512_BUILD
// A pruned fully-connected layer's units [o0, o1): each row's nonzeros 16 at a time, their
// inputs gathered (the input vector stays in cache), the 16 products summed in a fixed order.
AVX512 void mlk_gemv_sparse_avx512_(int o0, int o1, const float *x, const float *values, const int *columns, const int *starts,
                                    float alpha, float *y) {
  for (int o = o0; o < o1; o++) {
    __m512 acc = _mm512_setzero_ps();
    int k = starts[o];
    const int end = starts[o + 1];
    for (; k + 16 <= end; k += 16) {
      const __m512i idx = _mm512_loadu_si512((const void *)(columns + k));
      acc = _mm512_fmadd_ps(_mm512_loadu_ps(values + k), _mm512_i32gather_ps(idx, x, 4), acc);
    }
    if (k < end) {
      const __mmask16 m = (__mmask16)((1u << (end - k)) - 1);
      const __m512i idx = _mm512_maskz_loadu_epi32(m, columns + k);
      acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, values + k), _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, x, 4), acc);
    }
    y[o] += alpha * _mm512_reduce_add_ps(acc);
  }
}
#endif
