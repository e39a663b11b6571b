// Grouped convolutions with few channels per group over NCHW data (RegNet's groups of 8 and
// 16, ResNeXt's of 4 to 16). Through im2col and a GEMM per group these ran at 13 GFLOP/s: a
// GEMM of 8 rows leaves most of its register tile empty and each group repacks its columns.
// Here each task is one output row of one group: the row is cut into chunks of 16 columns, and
// a chunk keeps one accumulator per output channel of the group; every input vector (one tap of
// one input channel, masked to the row so that padding needs no copy) is multiplied into all of
// them, the weights broadcast from memory. Stride 2 loads 32 inputs and keeps the even lanes.
// Each output is its taps in (channel, kh, kw) order, then scale and bias (a folded BatchNorm),
// the residual and the activation: the same arithmetic whatever the thread count.
#include "avx512.h"

#if MLK_AVX512_BUILD

typedef struct {
  const mlk_conv *p;
  const float *x, *w, *bias, *scale, *res;
  float *y;
  mlk_epilogue act;
} grouped_job;

// Channel ch's bias, after its scale (a folded BatchNorm) where there is one.
AVX512 static inline __attribute__((always_inline)) __m512 with_bias(const grouped_job *j, int ch, __m512 v) {
  const __m512 b = _mm512_set1_ps(j->bias ? j->bias[ch] : 0.0f);
  return j->scale ? _mm512_fmadd_ps(v, _mm512_set1_ps(j->scale[ch]), b) : _mm512_add_ps(v, b);
}

AVX512 static inline __attribute__((always_inline)) void grouped_row(const grouped_job *j, int t, const int cout) {
  const mlk_conv *p = j->p;
  const int g = p->groups, cin_g = p->in_c / g, cout_g = p->out_c / g;
  const int kk = cin_g * p->k_h * p->k_w;
  const size_t in_hw = (size_t)p->in_h * p->in_w, out_hw = (size_t)p->out_h * p->out_w;
  const int oh = t % p->out_h, gi = (t / p->out_h) % g, n = t / p->out_h / g;
  const float *xg = j->x + ((size_t)n * p->in_c + (size_t)gi * cin_g) * in_hw;
  const float *wg = j->w + (size_t)gi * cout_g * kk;
  const size_t at = ((size_t)n * p->out_c + (size_t)gi * cout_g) * out_hw + (size_t)oh * p->out_w;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const vclamp cl = clamp_of(j->act);
  for (int ow0 = 0; ow0 < p->out_w; ow0 += 16) {
    __mmask16 m0[DW_MAX_KW * 8], m1[DW_MAX_KW * 8];
    window_masks(p, ow0, 1, m0, m1);
    __m512 acc[16];
#pragma clang loop unroll(full)
    for (int o = 0; o < cout; o++) acc[o] = _mm512_setzero_ps();
    for (int c = 0; c < cin_g; c++) {
      for (int kh = 0; kh < p->k_h; kh++) {
        const int ih = oh * p->stride_h - p->pad_top + kh * p->dil_h;
        if (ih < 0 || ih >= p->in_h) continue;
        const float *row = xg + (size_t)c * in_hw + (size_t)ih * p->in_w;
        const float *wk = wg + ((size_t)c * p->k_h + kh) * p->k_w;
        for (int kw = 0; kw < p->k_w; kw++) {
          const float *src = row + (long)ow0 * p->stride_w - p->pad_left + (long)kw * p->dil_w;
          __m512 v;
          if (p->stride_w == 1) {
            v = load16(m0[kw * 8], src);
          } else {
            v = _mm512_permutex2var_ps(load16(m0[kw * 8], src), even, load16(m1[kw * 8], src + 16));
          }
#pragma clang loop unroll(full)
          for (int o = 0; o < cout; o++) acc[o] = _mm512_fmadd_ps(_mm512_set1_ps(wk[(size_t)o * kk + kw]), v, acc[o]);
        }
      }
    }
    const __mmask16 m = lanes_inside(ow0, p->out_w);
#pragma clang loop unroll(full)
    for (int o = 0; o < cout; o++) {
      __m512 v = with_bias(j, gi * cout_g + o, acc[o]);
      const size_t off = at + (size_t)o * out_hw + (size_t)ow0;
      if (j->res) v = _mm512_add_ps(v, load16(m, j->res + off));
      store16(j->y + off, m, apply_clamp(v, cl));
    }
  }
}

// Planes of at most 8 columns (RegNet's last stage: 7x7) filled 7 of a vector's 16 lanes; here
// each task takes two output rows of one group, row 2r in lanes 0-7 and row 2r + 1 in lanes
// 8-15, so every broadcast weight multiplies both. Each output's taps are summed in the same
// order as in grouped_row (a row outside the input adds nothing there and zeros here, which
// leave every sum's bits as they are), so results do not depend on the path.
AVX512 static inline __attribute__((always_inline)) void grouped_row_pair(const grouped_job *j, int t, const int cout) {
  const mlk_conv *p = j->p;
  const int g = p->groups, cin_g = p->in_c / g, cout_g = p->out_c / g, pairs = (p->out_h + 1) / 2;
  const int kk = cin_g * p->k_h * p->k_w;
  const size_t in_hw = (size_t)p->in_h * p->in_w, out_hw = (size_t)p->out_h * p->out_w;
  const int oh0 = t % pairs * 2, gi = (t / pairs) % g, n = t / pairs / g;
  const int has1 = oh0 + 1 < p->out_h;
  const float *xg = j->x + ((size_t)n * p->in_c + (size_t)gi * cin_g) * in_hw;
  const float *wg = j->w + (size_t)gi * cout_g * kk;
  const size_t at = ((size_t)n * p->out_c + (size_t)gi * cout_g) * out_hw + (size_t)oh0 * p->out_w;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const vclamp cl = clamp_of(j->act);
  __mmask16 m0[DW_MAX_KW * 8], m1[DW_MAX_KW * 8];
  window_masks(p, 0, 1, m0, m1);
  __m512 acc[16];
#pragma clang loop unroll(full)
  for (int o = 0; o < cout; o++) acc[o] = _mm512_setzero_ps();
  for (int c = 0; c < cin_g; c++) {
    for (int kh = 0; kh < p->k_h; kh++) {
      const int ih0 = oh0 * p->stride_h - p->pad_top + kh * p->dil_h, ih1 = ih0 + p->stride_h;
      const int in0 = ih0 >= 0 && ih0 < p->in_h, in1 = has1 && ih1 >= 0 && ih1 < p->in_h;
      if (!in0 && !in1) continue;
      const float *row0 = xg + (size_t)c * in_hw + (size_t)(in0 ? ih0 : 0) * p->in_w;
      const float *row1 = xg + (size_t)c * in_hw + (size_t)(in1 ? ih1 : 0) * p->in_w;
      const float *wk = wg + ((size_t)c * p->k_h + kh) * p->k_w;
      for (int kw = 0; kw < p->k_w; kw++) {
        const long off = -(long)p->pad_left + (long)kw * p->dil_w;
        __m512 v;
        if (p->stride_w == 1) {
          const __mmask16 lo = (__mmask16)(m0[kw * 8] & 0xFF);
          v = in0 ? _mm512_maskz_loadu_ps(lo, row0 + off) : _mm512_setzero_ps();
          if (in1) v = _mm512_mask_loadu_ps(v, (__mmask16)(lo << 8), row1 + off - 8);
        } else {
          // Output columns 0-7 read input lanes 0-14 of the window: one vector a row.
          v = _mm512_permutex2var_ps(in0 ? load16(m0[kw * 8], row0 + off) : _mm512_setzero_ps(), even,
                                     in1 ? load16(m0[kw * 8], row1 + off) : _mm512_setzero_ps());
        }
#pragma clang loop unroll(full)
        for (int o = 0; o < cout; o++) acc[o] = _mm512_fmadd_ps(_mm512_set1_ps(wk[(size_t)o * kk + kw]), v, acc[o]);
      }
    }
  }
  const __mmask16 m = lanes_inside(0, p->out_w);
#pragma clang loop unroll(full)
  for (int o = 0; o < cout; o++) {
    const __m512 v = with_bias(j, gi * cout_g + o, acc[o]);
    const size_t off0 = at + (size_t)o * out_hw, off1 = off0 + (size_t)p->out_w;
    // Row 1's lanes moved down to 0-7 for its store.
    const __m512 v1 = _mm512_castpd_ps(_mm512_shuffle_f64x2(_mm512_castps_pd(v), _mm512_castps_pd(v), 0xEE));
    __m512 r0 = v, r1 = v1;
    if (j->res) {
      r0 = _mm512_add_ps(r0, load16(m, j->res + off0));
      if (has1) r1 = _mm512_add_ps(r1, load16(m, j->res + off1));
    }
    store16(j->y + off0, m, apply_clamp(r0, cl));
    if (has1) store16(j->y + off1, m, apply_clamp(r1, cl));
  }
}

// One instance per group width, so that the accumulators stay in registers.
#define GROUPED_CASE(C) \
  case C: if (j->p->out_w <= 8) grouped_row_pair(j, t, C); else grouped_row(j, t, C); break;

AVX512 static void grouped_task(void *ctx, int t) {
  const grouped_job *j = ctx;
  switch (j->p->out_c / j->p->groups) {
    GROUPED_CASE(1) GROUPED_CASE(2) GROUPED_CASE(3) GROUPED_CASE(4) GROUPED_CASE(5) GROUPED_CASE(6) GROUPED_CASE(7)
    GROUPED_CASE(8) GROUPED_CASE(9) GROUPED_CASE(10) GROUPED_CASE(11) GROUPED_CASE(12) GROUPED_CASE(13) GROUPED_CASE(14)
    GROUPED_CASE(15) GROUPED_CASE(16)
    default: break;
  }
}
#undef GROUPED_CASE

void mlk_conv_grouped_avx512_(const mlk_conv *p, const float *x, const float *w, const float *bias, const float *scale,
                              const float *res, float *y, mlk_epilogue act) {
  grouped_job job = {p, x, w, bias, scale, res, y, act};
  mlk_parallel_(p->batch * p->groups * (p->out_w <= 8 ? (p->out_h + 1) / 2 : p->out_h), grouped_task, &job);
}

#endif
