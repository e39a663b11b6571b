// AVX-512 pooling: max pooling of NCHW planes, global average (means of planes).
#include "avx512.h"

#if MLK_AVX512_BUILD

// One tap for chunk c's 16 outputs: the input columns at stride sw (1 or 2) from src, read under
// the chunk's masks (ma, and mb for a stride-2 chunk's second half) with `fill` outside the row.
AVX512 static inline __attribute__((always_inline)) __m512 tap16(const int sw, __m512 fill, __mmask16 ma, __mmask16 mb,
                                                                 const float *src, int c) {
  if (sw == 1) return load_or(fill, ma, src + 16 * c);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  return _mm512_permutex2var_ps(load_or(fill, ma, src + 32 * c), even, load_or(fill, mb, src + 32 * c + 16));
}

// Max pooling over one NCHW plane, shaped like the depthwise kernel: up to 8 chunks of 16
// outputs in registers per row, loads masked to the input row with -inf in the masked-off
// lanes. A NaN in any tap makes the output NaN (as the scalar kernel does). Callers ensure
// every window holds at least one input (pads smaller than the kernel).
AVX512 static inline __attribute__((always_inline)) void max_rows(const int nch, const int sw, const mlk_conv *p,
                                                                  const float *plane, float *dst, int ow0,
                                                                  const __mmask16 *m0, const __mmask16 *m1) {
  const __m512 ninf = _mm512_set1_ps(-__builtin_inff()), qnan = _mm512_set1_ps(__builtin_nanf(""));
  for (int oh = 0; oh < p->out_h; oh++) {
    __m512 acc[8];
    __mmask16 nan[8];
#pragma clang loop unroll(full)
    for (int c = 0; c < nch; c++) { acc[c] = ninf; nan[c] = 0; }
    for (int kh = 0; kh < p->k_h; kh++) {
      const int ih = oh * p->stride_h - p->pad_top + kh * p->dil_h;
      if (ih < 0 || ih >= p->in_h) continue;
      const float *row = plane + (size_t)ih * p->in_w;
      for (int kw = 0; kw < p->k_w; kw++) {
        const float *src = row + (long)ow0 * sw - p->pad_left + (long)kw * p->dil_w;
#pragma clang loop unroll(full)
        for (int c = 0; c < nch; c++) {
          const __m512 v = tap16(sw, ninf, m0[kw * 8 + c], m1[kw * 8 + c], src, c);
          nan[c] |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
          acc[c] = _mm512_max_ps(acc[c], v);
        }
      }
    }
    float *d = dst + (size_t)oh * p->out_w + ow0;
#pragma clang loop unroll(full)
    for (int c = 0; c < nch; c++)
      store16(d + 16 * c, lanes_inside(ow0 + 16 * c, p->out_w), _mm512_mask_blend_ps(nan[c], acc[c], qnan));
  }
}

// One output column (a 7x7 stride-7 pool over a 7x7 plane, as Keras exports a global average)
// reads as stride 1: only lane 0 of the first chunk is kept.
int mlk_pool_planes_avx512_ok_(const mlk_conv *p) {
  return mlk_use_avx512_() && (p->stride_w == 1 || p->stride_w == 2 || p->out_w == 1) && p->k_w <= DW_MAX_KW && p->pad_top < p->k_h &&
         p->pad_bottom < p->k_h && p->pad_left < p->k_w && p->pad_right < p->k_w && p->dil_h == 1 && p->dil_w == 1;
}

// 3x3, stride 2, one column of left padding (ResNet's max pool): per output row, the three input
// rows' maximum first (vectors of 32 input columns), then the windows across: for the 16 outputs of
// a chunk, their even input columns (tap 1) and odd ones (tap 2) by two permutes, and the odd ones
// one column to the left (tap 0) by shifting in the previous chunk's last odd column. Half the
// vector operations of max_rows. A NaN in a column's rows makes that column's maximum NaN, and a
// NaN among a window's columns its output (as the scalar kernel).
AVX512 static void max3s2_plane(const mlk_conv *p, const float *plane, float *dst) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512 ninf = _mm512_set1_ps(-__builtin_inff()), qnan = _mm512_set1_ps(__builtin_nanf(""));
  const int nch = (p->out_w + 15) / 16;
  for (int oh = 0; oh < p->out_h; oh++) {
    const float *rows[3];
    int nr = 0;
    for (int kh = 0; kh < 3; kh++) {
      const int ih = oh * 2 - p->pad_top + kh;
      if (ih >= 0 && ih < p->in_h) rows[nr++] = plane + (size_t)ih * p->in_w;
    }
    float *d = dst + (size_t)oh * p->out_w;
    if (nr == 0) {   // a window wholly in the padding (callers avoid these): -inf, as max_rows gives
      for (int c = 0; c < nch; c++) store16(d + 16 * c, lanes_inside(16 * c, p->out_w), ninf);
      continue;
    }
    // The two input rows that output row oh + 6 adds, past the plane's end the next plane's (the
    // planes come from L3 in a model; a prefetch does not fault): ResNet50's max pool 0.151 ->
    // 0.114 ms in the model.
    const float *ahead = plane + (size_t)(oh * 2 + 12 - p->pad_top + 1) * p->in_w;
    for (int q = 0; q < 2 * p->in_w; q += 16) _mm_prefetch((const char *)(ahead + q), _MM_HINT_T0);
    __m512 prev_odd = ninf;   // lane 15: input column 32c - 1 (the left pad for chunk 0)
    for (int c = 0; c < nch; c++) {
      const __mmask16 ma = lanes_inside(32 * c, p->in_w), mb = lanes_inside(32 * c + 16, p->in_w);
      __m512 a = load_or(ninf, ma, rows[0] + 32 * c), b = load_or(ninf, mb, rows[0] + 32 * c + 16);
      __mmask16 na = _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), nb = _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q);
      for (int r = 1; r < nr; r++) {
        const __m512 x = load_or(ninf, ma, rows[r] + 32 * c), y = load_or(ninf, mb, rows[r] + 32 * c + 16);
        na |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        nb |= _mm512_cmp_ps_mask(y, y, _CMP_UNORD_Q);
        a = _mm512_max_ps(a, x);
        b = _mm512_max_ps(b, y);
      }
      a = _mm512_mask_blend_ps(na, a, qnan);
      b = _mm512_mask_blend_ps(nb, b, qnan);
      const __m512 ev = _mm512_permutex2var_ps(a, even, b), od = _mm512_permutex2var_ps(a, odd, b);
      const __m512 left = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(od), _mm512_castps_si512(prev_odd), 15));
      prev_odd = od;
      const __mmask16 nan = _mm512_cmp_ps_mask(ev, od, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(left, left, _CMP_UNORD_Q);
      const __m512 m = _mm512_max_ps(_mm512_max_ps(left, ev), od);
      store16(d + 16 * c, lanes_inside(16 * c, p->out_w), _mm512_mask_blend_ps(nan, m, qnan));
    }
  }
}

// Planes [0, planes) of x into y. The windows' load masks depend on the geometry only: worked out
// once for all the planes (per plane, they had taken most of the time on small planes: GoogLeNet's
// 3x3 pools over 7x7x832, 0.11 ms each).
AVX512 void mlk_maxpool_planes_avx512_(const mlk_conv *p, const float *x, float *y, int planes) {
  const size_t in_hw = (size_t)p->in_h * p->in_w, out_hw = (size_t)p->out_h * p->out_w;
  if (mlk_pool_loop(0, 0, p) == MLK_POOL_MAX_3X3S2) {
    for (int i = 0; i < planes; i++) max3s2_plane(p, x + i * in_hw, y + i * out_hw);
    return;
  }
  const int sw = p->out_w == 1 ? 1 : p->stride_w, nchunks = (p->out_w + 15) / 16;
  __mmask16 m0[DW_MAX_KW * 8], m1[DW_MAX_KW * 8];
  for (int ow0 = 0; ow0 < p->out_w; ow0 += 16 * 8) {
    const int left = nchunks - ow0 / 16, nch = left >= 8 ? 8 : left;
    window_masks(p, ow0, nch, m0, m1);
    for (int i = 0; i < planes; i++) {
      const float *plane = x + i * in_hw;
      float *dst = y + i * out_hw;
#define MAX_CASE(N) \
      case N: sw == 1 ? max_rows(N, 1, p, plane, dst, ow0, m0, m1) : max_rows(N, 2, p, plane, dst, ow0, m0, m1); break;
      switch (nch) {
        MAX_CASE(1) MAX_CASE(2) MAX_CASE(3) MAX_CASE(4) MAX_CASE(5) MAX_CASE(6) MAX_CASE(7) MAX_CASE(8)
        default: break;
      }
#undef MAX_CASE
    }
  }
}

// Means of `planes` planes of `inner` floats (NCHW), summed in double: 16 floats at a time into
// two vectors of 8 doubles, lane-wise along the plane, then across lanes. Channel-blocked input
// (blocks of 16 planes interleaved, [planes/16][inner][16]): each lane its plane's sum, in order.
AVX512 void mlk_global_mean_avx512_(int planes, int inner, int blocked, const float *x, float *y) {
  const double inv = 1.0 / (inner > 0 ? inner : 1);
  if (blocked) {
    for (int b = 0; b < planes / 16; b++) {
      const float *xb = x + (size_t)b * inner * 16;
      __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
      for (int j = 0; j < inner; j++) {
        const __m512 v = _mm512_loadu_ps(xb + (size_t)j * 16);
        lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
        hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
      }
      const __m256 a = _mm512_cvtpd_ps(_mm512_mul_pd(lo, _mm512_set1_pd(inv)));
      const __m256 c = _mm512_cvtpd_ps(_mm512_mul_pd(hi, _mm512_set1_pd(inv)));
      _mm256_storeu_ps(y + (size_t)b * 16, a);
      _mm256_storeu_ps(y + (size_t)b * 16 + 8, c);
    }
    return;
  }
  const int i16 = inner / 16 * 16;
  const __mmask16 tail = (__mmask16)((1u << (inner - i16)) - 1);
  for (int i = 0; i < planes; i++) {
    const float *xi = x + (size_t)i * inner;
    __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
    // Plain loads, then the plane's tail masked (see load16: masked loads get no prefetching).
    for (int j = 0; j < inner; j += 16) {
      const __m512 v = j < i16 ? _mm512_loadu_ps(xi + j) : _mm512_maskz_loadu_ps(tail, xi + j);
      lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
      hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
    }
    y[i] = (float)(_mm512_reduce_add_pd(_mm512_add_pd(lo, hi)) * inv);
  }
}

// mlk_global_max's planes: four vector maxima in flight, max(v, acc) passing over NaN.
AVX512 void mlk_global_max_avx512_(int planes, int inner, const float *x, float *y) {
  const int i16 = inner / 16 * 16;
  const __mmask16 tail = (__mmask16)((1u << (inner - i16)) - 1);
  const __m512 ninf = _mm512_set1_ps(-__builtin_inff());
  for (int i = 0; i < planes; i++) {
    const float *xi = x + (size_t)i * inner;
    __m512 m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    int j = 0;
    for (; j + 64 <= i16; j += 64) {
      m0 = _mm512_max_ps(_mm512_loadu_ps(xi + j), m0);
      m1 = _mm512_max_ps(_mm512_loadu_ps(xi + j + 16), m1);
      m2 = _mm512_max_ps(_mm512_loadu_ps(xi + j + 32), m2);
      m3 = _mm512_max_ps(_mm512_loadu_ps(xi + j + 48), m3);
    }
    for (; j < i16; j += 16) m0 = _mm512_max_ps(_mm512_loadu_ps(xi + j), m0);
    if (tail) m1 = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, tail, xi + i16), m1);
    y[i] = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
  }
}

// Max pooling over NHWC data, output row oh of one image: channels as vectors, 64 at a time,
// each window's taps a run of vector maxima. As the portable loop: a NaN input is passed over
// (max(v, acc) keeps acc when v is NaN), and a window with no input inside gives -inf.
AVX512 void mlk_maxpool_nhwc_row_avx512_(const mlk_conv *p, const float *xn, float *yn, int oh) {
  const int C = p->in_c, whole = C / 16 * 16;
  const __mmask16 tail = (__mmask16)((1u << (C % 16)) - 1);
  const __m512 ninf = _mm512_set1_ps(-__builtin_inff());
  int kh0, kh1;
  mlk_taps_inside(oh * p->stride_h - p->pad_top, p->k_h, p->dil_h, p->in_h, &kh0, &kh1);
  const float *rows = xn + (size_t)(oh * p->stride_h - p->pad_top) * p->in_w * C;
  const long row_step = (long)p->dil_h * p->in_w * C;
  for (int ow = 0; ow < p->out_w; ow++) {
    const int iw0 = ow * p->stride_w - p->pad_left;
    int kw0, kw1;
    mlk_taps_inside(iw0, p->k_w, p->dil_w, p->in_w, &kw0, &kw1);
    float *dst = yn + ((size_t)oh * p->out_w + ow) * C;
    const float *base = rows + (long)iw0 * C;
    for (int c = 0; c < whole; c += 16) {
      __m512 acc = ninf;
      for (int kh = kh0; kh < kh1; kh++)
        for (int kw = kw0; kw < kw1; kw++)
          acc = _mm512_max_ps(_mm512_loadu_ps(base + kh * row_step + (long)kw * p->dil_w * C + c), acc);
      _mm512_storeu_ps(dst + c, acc);
    }
    if (tail) {
      __m512 acc = ninf;
      for (int kh = kh0; kh < kh1; kh++)
        for (int kw = kw0; kw < kw1; kw++)
          acc = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, tail, base + kh * row_step + (long)kw * p->dil_w * C + whole), acc);
      _mm512_mask_storeu_ps(dst + whole, tail, acc);
    }
  }
}

// Average pooling over NCHW planes, shaped like max_rows: up to 8 chunks of 16 outputs in
// registers, for `nr` output rows at once (each chunk's sum is a chain of dependent adds: on a
// 17-wide plane two chains ran at the adds' latency), each tap a load masked to the input row
// (-0.0 in the masked-off lanes, which leaves every sum as it is), summed in (kh, kw) order from
// zero and multiplied by the reciprocals of the taps counted (1 / rows[oh], 1 / cols[ow]): the
// portable loop's sums, divided by rounding only differently. The sums had gone through a row in
// memory (input rows added, then the window's columns), whose loads overlapped the stores just
// made: store forwarding failed on every one, and Inception v3's 3x3 pools over 17x17 planes ran
// at 4 GFLOP/s.
AVX512 static inline __attribute__((always_inline)) void avg_rows(const int nch, const int sw, const int nr, const mlk_conv *p,
                                                                  const float *plane, float *dst, int ow0, int oh0,
                                                                  const __mmask16 *m0, const __mmask16 *m1, const __m512 *inv_cols,
                                                                  const float *inv_rows) {
  const __m512 nzero = _mm512_set1_ps(-0.0f);
  __m512 acc[4][8];
#pragma clang loop unroll(full)
  for (int r = 0; r < nr; r++)
#pragma clang loop unroll(full)
    for (int c = 0; c < nch; c++) acc[r][c] = _mm512_setzero_ps();
  for (int kh = 0; kh < p->k_h; kh++) {
    const float *src[4];
    int inside[4];
#pragma clang loop unroll(full)
    for (int r = 0; r < nr; r++) {
      const int ih = (oh0 + r) * p->stride_h - p->pad_top + kh * p->dil_h;
      inside[r] = ih >= 0 && ih < p->in_h;
      src[r] = plane + (size_t)(inside[r] ? ih : 0) * p->in_w + (long)ow0 * sw - p->pad_left;
    }
    for (int kw = 0; kw < p->k_w; kw++) {
#pragma clang loop unroll(full)
      for (int r = 0; r < nr; r++) {
        if (!inside[r]) continue;
        const float *at = src[r] + (long)kw * p->dil_w;
#pragma clang loop unroll(full)
        for (int c = 0; c < nch; c++) acc[r][c] = _mm512_add_ps(acc[r][c], tap16(sw, nzero, m0[kw * 8 + c], m1[kw * 8 + c], at, c));
      }
    }
  }
#pragma clang loop unroll(full)
  for (int r = 0; r < nr; r++) {
    const __m512 inv_row = _mm512_set1_ps(inv_rows[oh0 + r]);
    float *d = dst + (size_t)(oh0 + r) * p->out_w + ow0;
#pragma clang loop unroll(full)
    for (int c = 0; c < nch; c++)
      store16(d + 16 * c, lanes_inside(ow0 + 16 * c, p->out_w), _mm512_mul_ps(_mm512_mul_ps(acc[r][c], inv_row), inv_cols[c]));
  }
}

// One chunk of columns of a plane: rows four (one or two chunks), two (three or four) or one at a time.
AVX512 static inline __attribute__((always_inline)) void avg_plane(const int nch, const int sw, const mlk_conv *p, const float *plane,
                                                                   float *dst, int ow0, const __mmask16 *m0, const __mmask16 *m1,
                                                                   const __m512 *inv_cols, const float *inv_rows) {
  const int nr = nch <= 2 ? 4 : nch <= 4 ? 2 : 1;
  int oh = 0;
  for (; oh + nr <= p->out_h; oh += nr) avg_rows(nch, sw, nr, p, plane, dst, ow0, oh, m0, m1, inv_cols, inv_rows);
  for (; oh < p->out_h; oh++) avg_rows(nch, sw, 1, p, plane, dst, ow0, oh, m0, m1, inv_cols, inv_rows);
}

// Planes [0, planes) of x into y; masks and reciprocals worked out once for all of them.
AVX512 void mlk_avgpool_planes_avx512_(const mlk_conv *p, const float *x, float *y, int planes, const float *rows, const float *cols) {
  const size_t in_hw = (size_t)p->in_h * p->in_w, out_hw = (size_t)p->out_h * p->out_w;
  const int sw = p->out_w == 1 ? 1 : p->stride_w, nchunks = (p->out_w + 15) / 16;
  float inv_rows[4096];
  for (int oh = 0; oh < p->out_h; oh++) inv_rows[oh] = rows[oh] > 0 ? 1.0f / rows[oh] : 1.0f;
  __mmask16 m0[DW_MAX_KW * 8], m1[DW_MAX_KW * 8];
  for (int ow0 = 0; ow0 < p->out_w; ow0 += 16 * 8) {
    const int left = nchunks - ow0 / 16, nch = left >= 8 ? 8 : left;
    window_masks(p, ow0, nch, m0, m1);
    __m512 inv_cols[8];
    for (int c = 0; c < 8; c++) {
      float v[16];
      for (int l = 0; l < 16; l++) {
        const int ow = ow0 + 16 * c + l;
        v[l] = ow < p->out_w && cols[ow] > 0 ? 1.0f / cols[ow] : 1.0f;
      }
      inv_cols[c] = _mm512_loadu_ps(v);
    }
    for (int i = 0; i < planes; i++) {
      const float *plane = x + i * in_hw;
      float *dst = y + i * out_hw;
#define AVG_CASE(N) \
      case N: sw == 1 ? avg_plane(N, 1, p, plane, dst, ow0, m0, m1, inv_cols, inv_rows) : avg_plane(N, 2, p, plane, dst, ow0, m0, m1, inv_cols, inv_rows); break;
      switch (nch) {
        AVG_CASE(1) AVG_CASE(2) AVG_CASE(3) AVG_CASE(4) AVG_CASE(5) AVG_CASE(6) AVG_CASE(7) AVG_CASE(8)
        default: break;
      }
#undef AVG_CASE
    }
  }
}

// Average pooling over NHWC data, output row oh of one image: channels as vectors, each window's
// taps summed in (kh, kw) order from zero and divided by the taps counted (inside the input, or
// inside the padded extent with count_include_pad), as the portable loop does, bit for bit.
AVX512 void mlk_avgpool_nhwc_row_avx512_(const mlk_conv *p, int include_pad, const float *xn, float *yn, int oh) {
  const int C = p->in_c, whole = C / 16 * 16;
  const __mmask16 tail = (__mmask16)((1u << (C % 16)) - 1);
  int kh0, kh1, taps_h = 0;
  for (int kh = 0; kh < p->k_h; kh++) {
    const int ih = oh * p->stride_h - p->pad_top + kh * p->dil_h;
    taps_h += ih >= -p->pad_top && ih < p->in_h + p->pad_bottom;
  }
  mlk_taps_inside(oh * p->stride_h - p->pad_top, p->k_h, p->dil_h, p->in_h, &kh0, &kh1);
  const float *rows = xn + (size_t)(oh * p->stride_h - p->pad_top) * p->in_w * C;
  const long row_step = (long)p->dil_h * p->in_w * C;
  for (int ow = 0; ow < p->out_w; ow++) {
    const int iw0 = ow * p->stride_w - p->pad_left;
    int kw0, kw1, taps_w = 0;
    for (int kw = 0; kw < p->k_w; kw++) {
      const int iw = iw0 + kw * p->dil_w;
      taps_w += iw >= -p->pad_left && iw < p->in_w + p->pad_right;
    }
    mlk_taps_inside(iw0, p->k_w, p->dil_w, p->in_w, &kw0, &kw1);
    const int count = (kh1 - kh0) * (kw1 - kw0), taps = taps_h * taps_w;
    const float div = (float)(include_pad ? (taps ? taps : 1) : (count ? count : 1));
    const __m512 vdiv = _mm512_set1_ps(div);
    float *dst = yn + ((size_t)oh * p->out_w + ow) * C;
    const float *base = rows + (long)iw0 * C;
    for (int c = 0; c < whole; c += 16) {
      __m512 acc = _mm512_setzero_ps();
      for (int kh = kh0; kh < kh1; kh++)
        for (int kw = kw0; kw < kw1; kw++) acc = _mm512_add_ps(acc, _mm512_loadu_ps(base + kh * row_step + (long)kw * p->dil_w * C + c));
      _mm512_storeu_ps(dst + c, _mm512_div_ps(acc, vdiv));
    }
    if (tail) {
      __m512 acc = _mm512_setzero_ps();
      for (int kh = kh0; kh < kh1; kh++)
        for (int kw = kw0; kw < kw1; kw++)
          acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(tail, base + kh * row_step + (long)kw * p->dil_w * C + whole));
      _mm512_mask_storeu_ps(dst + whole, tail, _mm512_div_ps(acc, vdiv));
    }
  }
}

#endif
