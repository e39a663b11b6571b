// Direct NHWC convolution for few input channels (network stems over RGB or grayscale images):
// the products read the input where it lies, with no im2col rows in between. With 3 input
// channels an im2col row is 27 floats (3x3) or 75 (5x5): building the rows and reading them back
// cost as much as the products, and 16 or 24 output channels filled half or three quarters of
// the GEMM's 32-wide tiles.
#include "avx512.h"

#if MLK_AVX512_BUILD

// NP pixels of output row oh, from column ow (np of them valid), by the nv x 16 channels of one
// 32-channel weight panel (`panel`: [kk][32], k in (kh, kw, c) order). NP x nv accumulators; per
// tap, the panel's vectors are loaded once for all the pixels and each pixel's input value is
// broadcast. Each output is the bias plus the taps in k order, as the GEMM sums them.
// Inside the row (`edge` 0), a pixel's taps (kw, c) of one kernel row are k_w * C consecutive
// floats of the input, and pixel i's start lies i * SC floats on (SC = stride_w * C, a
// compile-time constant where it is one of the common ones, so that every broadcast is one
// load at a fixed displacement from one moving pointer). `edge`: taps are checked against the
// input's columns.
AVX512 static inline __attribute__((always_inline)) void stem_pixels(const int NP, const int nv, const int edge, const int SC,
    const mlk_conv *p, const float *xn, const float *panel, int kh0, int kh1, int oh, int ow, int np,
    __mmask16 m0, __mmask16 m1, __m512 b0, __m512 b1, float *dst, vclamp cl) {
  const int C = p->in_c, O = p->out_c, span = p->k_w * C;
  const long sc = SC ? SC : (long)p->stride_w * C;
  __m512 acc[12][2];
#pragma clang loop unroll(full)
  for (int i = 0; i < NP; i++) { acc[i][0] = b0; acc[i][1] = b1; }
  for (int kh = kh0; kh < kh1; kh++) {
    const float *row = xn + (size_t)(oh * p->stride_h - p->pad_top + kh * p->dil_h) * p->in_w * C;
    if (!edge) {
      const float *xp = row + ((long)ow * p->stride_w - p->pad_left) * C;
      const float *wk = panel + (size_t)kh * span * 32;
      for (int t = 0; t < span; t++, xp++, wk += 32) {
        const __m512 w0 = _mm512_loadu_ps(wk), w1 = nv == 2 ? _mm512_loadu_ps(wk + 16) : w0;
#pragma clang loop unroll(full)
        for (int i = 0; i < NP; i++) {
          const __m512 xv = _mm512_set1_ps(xp[i * sc]);
          acc[i][0] = _mm512_fmadd_ps(xv, w0, acc[i][0]);
          if (nv == 2) acc[i][1] = _mm512_fmadd_ps(xv, w1, acc[i][1]);
        }
      }
      continue;
    }
    for (int kw = 0; kw < p->k_w; kw++) {
      const float *wk = panel + (size_t)(kh * p->k_w + kw) * C * 32;
      const int iw0 = ow * p->stride_w - p->pad_left + kw * p->dil_w;
      for (int c = 0; c < C; c++) {
        const __m512 w0 = _mm512_loadu_ps(wk + c * 32), w1 = nv == 2 ? _mm512_loadu_ps(wk + c * 32 + 16) : w0;
#pragma clang loop unroll(full)
        for (int i = 0; i < NP; i++) {
          const int iw = iw0 + i * p->stride_w;
          if (i >= np || iw < 0 || iw >= p->in_w) continue;
          const __m512 xv = _mm512_set1_ps(row[(size_t)iw * C + c]);
          acc[i][0] = _mm512_fmadd_ps(xv, w0, acc[i][0]);
          if (nv == 2) acc[i][1] = _mm512_fmadd_ps(xv, w1, acc[i][1]);
        }
      }
    }
  }
#pragma clang loop unroll(full)
  for (int i = 0; i < NP; i++) {
    if (edge && i >= np) continue;
    float *out = dst + (size_t)i * O;
    store16(out, m0, apply_clamp(acc[i][0], cl));
    if (nv == 2) store16(out + 16, m1, apply_clamp(acc[i][1], cl));
  }
}

// The inner pixels with SC fixed at compile time for the common strides and channel counts.
AVX512 static void stem_inner(const int nv, const mlk_conv *p, const float *xn, const float *panel, int kh0, int kh1, int oh,
                              int ow, __mmask16 m0, __mmask16 m1, __m512 b0, __m512 b1, float *dst, vclamp cl) {
  switch (p->stride_w * p->in_c) {
#define STEM_CASE(sc) \
  case sc: \
    if (nv == 2) stem_pixels(12, 2, 0, sc, p, xn, panel, kh0, kh1, oh, ow, 12, m0, m1, b0, b1, dst, cl); \
    else stem_pixels(12, 1, 0, sc, p, xn, panel, kh0, kh1, oh, ow, 12, m0, m1, b0, b1, dst, cl); \
    return;
    STEM_CASE(1) STEM_CASE(2) STEM_CASE(3) STEM_CASE(4) STEM_CASE(6) STEM_CASE(8)
#undef STEM_CASE
  default:
    if (nv == 2) stem_pixels(12, 2, 0, 0, p, xn, panel, kh0, kh1, oh, ow, 12, m0, m1, b0, b1, dst, cl);
    else stem_pixels(12, 1, 0, 0, p, xn, panel, kh0, kh1, oh, ow, 12, m0, m1, b0, b1, dst, cl);
  }
}

// Two or more outputs (one output channel takes mlk_conv_nhwc_row_single_avx512_). With fewer than
// 16 the vectors are part empty, which still beats the narrow path's per-element gathers (hand_recrop's
// 3 -> 8 channel stem over 256x256: 5 GFLOP/s there).
int mlk_conv_nhwc_direct_ok_(const mlk_conv *p) {
  return p->groups == 1 && p->in_c <= 4 && p->k_h * p->k_w > 1 && p->out_c >= 2;
}

AVX512 void mlk_conv_nhwc_direct_row_avx512_(const mlk_conv *p, const float *xn, const float *panels, const float *bias,
                                             float *yn, int oh, mlk_epilogue act) {
  const int O = p->out_c, kk = p->k_h * p->k_w * p->in_c;
  const vclamp cl = clamp_of(act);
  int kh0, kh1;
  mlk_taps_inside(oh * p->stride_h - p->pad_top, p->k_h, p->dil_h, p->in_h, &kh0, &kh1);
  // Output columns whose taps all lie inside the row: [lo, hi).
  int lo, hi;
  mlk_columns_inside(p, &lo, &hi);
  for (int c0 = 0; c0 < O; c0 += 32) {
    const float *panel = panels + (size_t)(c0 / 32) * kk * 32;
    const __mmask16 m0 = lanes_inside(c0, O), m1 = lanes_inside(c0 + 16, O);
    const __m512 b0 = bias ? load16(m0, bias + c0) : _mm512_setzero_ps();
    const __m512 b1 = bias && m1 ? load16(m1, bias + c0 + 16) : _mm512_setzero_ps();
    // 12 pixels by 32 channels (24 sums), or 12 by 16 where 16 channels or fewer are left.
    for (int ow = 0; ow < p->out_w;) {
      const int inner = p->dil_w == 1 && ow >= lo && ow + 12 <= hi;
      const int np = inner ? 12 : (ow < lo ? (lo - ow < 12 ? lo - ow : 12) : (p->out_w - ow < 12 ? p->out_w - ow : 12));
      float *dst = yn + ((size_t)oh * p->out_w + ow) * O + c0;
      if (inner) stem_inner(m1 ? 2 : 1, p, xn, panel, kh0, kh1, oh, ow, m0, m1, b0, b1, dst, cl);
      else if (m1) stem_pixels(12, 2, 1, 0, p, xn, panel, kh0, kh1, oh, ow, np, m0, m1, b0, b1, dst, cl);
      else stem_pixels(12, 1, 1, 0, p, xn, panel, kh0, kh1, oh, ow, np, m0, m1, b0, b1, dst, cl);
      ow += np;
    }
  }
}

#endif
