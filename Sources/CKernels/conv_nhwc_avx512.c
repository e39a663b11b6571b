// AVX-512 NHWC row kernels: depthwise rows (wide and few-channel flat ones), convolutions to one
// output channel, 1x1 convolutions to 2-8 channels from few inputs.
#include "avx512.h"

#if MLK_AVX512_BUILD

// Up to NP output pixels of row oh (columns ow, ow + 1, ...; `np` of them) for the channels [c0,
// c0 + 16 nv): NP x nv accumulators, each tap's weight vectors loaded once for all the pixels.
// `edge`: taps are checked against the input's columns (pixels near the left or right border).
// `full`: all 16 nv channels are real, and loads and stores take no mask (see dwh_span).
AVX512 static inline __attribute__((always_inline)) void dwh_pixels(const int NP, const int nv, const int edge,
    const int full, const mlk_conv *p, const float *xn, const float *w, int kh0, int kh1, int oh, int ow, int np, int c0,
    __mmask16 m0, __mmask16 m1, __m512 b0, __m512 b1, float *yn, vclamp cl) {
  const int C = p->out_c;
  __m512 acc[4][2];
#pragma clang loop unroll(full)
  for (int i = 0; i < NP; i++) { acc[i][0] = b0; acc[i][1] = b1; }
  for (int kh = kh0; kh < kh1; kh++) {
    const float *row = xn + (size_t)(oh * p->stride_h - p->pad_top + kh * p->dil_h) * p->in_w * C + c0;
    for (int kw = 0; kw < p->k_w; kw++) {
      const float *k = w + ((size_t)kh * p->k_w + kw) * C + c0;
      const __m512 w0 = full ? _mm512_loadu_ps(k) : load16(m0, k);
      const __m512 w1 = nv == 2 ? (full ? _mm512_loadu_ps(k + 16) : load16(m1, k + 16)) : _mm512_setzero_ps();
#pragma clang loop unroll(full)
      for (int i = 0; i < NP; i++) {
        const int iw = (ow + i) * p->stride_w - p->pad_left + kw * p->dil_w;
        if (edge && (i >= np || iw < 0 || iw >= p->in_w)) continue;
        const float *src = row + (size_t)iw * C;
        acc[i][0] = _mm512_fmadd_ps(full ? _mm512_loadu_ps(src) : load16(m0, src), w0, acc[i][0]);
        if (nv == 2) acc[i][1] = _mm512_fmadd_ps(full ? _mm512_loadu_ps(src + 16) : load16(m1, src + 16), w1, acc[i][1]);
      }
    }
  }
#pragma clang loop unroll(full)
  for (int i = 0; i < NP; i++) {
    if (edge && i >= np) break;
    float *dst = yn + ((size_t)oh * p->out_w + ow + i) * C + c0;
    if (full) {
      _mm512_storeu_ps(dst, apply_clamp(acc[i][0], cl));
      if (nv == 2) _mm512_storeu_ps(dst + 16, apply_clamp(acc[i][1], cl));
    } else {
      store16(dst, m0, apply_clamp(acc[i][0], cl));
      if (nv == 2) store16(dst + 16, m1, apply_clamp(acc[i][1], cl));
    }
  }
}

// DWS_NP pixels of row oh inside the input row (columns ow, ow + 1, ...) and NV vectors of 16
// channels from c0 (masks m0, m1), for a window K taps wide at stride S (dilation 1): 8 x NV sums
// in registers, each tap's weights loaded once for the eight pixels, and each pixel's NV vectors
// stored side by side. Sums run in (kh, kw) order from the bias.
#define DWS_NP 8
AVX512 static inline __attribute__((always_inline)) void dwh_span(const int K, const int S, const int NV, const int FULL, const mlk_conv *p,
    const float *xn, const float *w, int kh0, int kh1, int oh, int ow, int c0, __mmask16 m0, __mmask16 m1, __m512 b0,
    __m512 b1, float *out, vclamp cl) {
  const int C = p->out_c;
  __m512 acc[DWS_NP][2];
#pragma clang loop unroll(full)
  for (int i = 0; i < DWS_NP; i++) { acc[i][0] = b0; acc[i][1] = b1; }
  for (int kh = kh0; kh < kh1; kh++) {
    const float *row = xn + ((size_t)(oh * p->stride_h - p->pad_top + kh * p->dil_h) * p->in_w + ow * S - p->pad_left) * C + c0;
    const float *k = w + (size_t)kh * K * C + c0;
#pragma clang loop unroll(full)
    for (int kw = 0; kw < K; kw++) {
      const __m512 w0 = FULL ? _mm512_loadu_ps(k + (size_t)kw * C) : _mm512_maskz_loadu_ps(m0, k + (size_t)kw * C);
      const __m512 w1 = NV == 1 ? w0 : FULL ? _mm512_loadu_ps(k + (size_t)kw * C + 16) : _mm512_maskz_loadu_ps(m1, k + (size_t)kw * C + 16);
#pragma clang loop unroll(full)
      for (int i = 0; i < DWS_NP; i++) {
        const float *src = row + (size_t)(i * S + kw) * C;
        acc[i][0] = _mm512_fmadd_ps(FULL ? _mm512_loadu_ps(src) : _mm512_maskz_loadu_ps(m0, src), w0, acc[i][0]);
        if (NV == 2) acc[i][1] = _mm512_fmadd_ps(FULL ? _mm512_loadu_ps(src + 16) : _mm512_maskz_loadu_ps(m1, src + 16), w1, acc[i][1]);
      }
    }
  }
#pragma clang loop unroll(full)
  for (int i = 0; i < DWS_NP; i++) {
    if (FULL) {
      _mm512_storeu_ps(out + (size_t)i * C + c0, apply_clamp(acc[i][0], cl));
      if (NV == 2) _mm512_storeu_ps(out + (size_t)i * C + c0 + 16, apply_clamp(acc[i][1], cl));
    } else {
      _mm512_mask_storeu_ps(out + (size_t)i * C + c0, m0, apply_clamp(acc[i][0], cl));
      if (NV == 2) _mm512_mask_storeu_ps(out + (size_t)i * C + c0 + 16, m1, apply_clamp(acc[i][1], cl));
    }
  }
}

// All channels of DWS_NP pixels inside the row, 32 at a time (16 for a last odd vector).
AVX512 static inline __attribute__((always_inline)) void dwh_span_all(const int K, const int S, const mlk_conv *p,
    const float *xn, const float *w, const float *bias, int kh0, int kh1, int oh, int ow, float *out, vclamp cl) {
  const int C = p->out_c;
  int c0 = 0;
  for (; c0 + 32 <= C; c0 += 32) {
    const __m512 b0 = bias ? _mm512_loadu_ps(bias + c0) : _mm512_setzero_ps();
    const __m512 b1 = bias ? _mm512_loadu_ps(bias + c0 + 16) : _mm512_setzero_ps();
    dwh_span(K, S, 2, 1, p, xn, w, kh0, kh1, oh, ow, c0, 0xFFFF, 0xFFFF, b0, b1, out, cl);
  }
  if (c0 < C) {   // the last 1-31 channels, under masks
    const __mmask16 m0 = lanes_inside(c0, C), m1 = lanes_inside(c0 + 16, C);
    const __m512 b0 = bias ? load16(m0, bias + c0) : _mm512_setzero_ps();
    const __m512 b1 = bias && m1 ? load16(m1, bias + c0 + 16) : _mm512_setzero_ps();
    if (m1) dwh_span(K, S, 2, 0, p, xn, w, kh0, kh1, oh, ow, c0, m0, m1, b0, b1, out, cl);
    else dwh_span(K, S, 1, 0, p, xn, w, kh0, kh1, oh, ow, c0, m0, m1, b0, b1, out, cl);
  }
}

// The row's pixels go in groups (mlk_depthwise_nhwc_row_avx512_): the group from column ow is
// eight pixels inside the row on the span path (*inner = 2: 3- and 5-wide windows, dilation 1),
// else four inside the row (*inner = 1), else 1-4 near an end (*inner = 0). Returns its pixels.
static int dwh_spans(const mlk_conv *p) {
  return p->dil_w == 1 && (p->k_w == 3 || p->k_w == 5) && (p->stride_w == 1 || p->stride_w == 2);
}

static int dwh_group(const mlk_conv *p, int span, int lo, int hi, int ow, int *inner) {
  if (span && ow >= lo && ow + DWS_NP <= hi) {
    *inner = 2;
    return DWS_NP;
  }
  *inner = ow >= lo && ow + 4 <= hi;
  return *inner ? 4 : (ow < lo ? (lo - ow < 4 ? lo - ow : 4) : (p->out_w - ow < 4 ? p->out_w - ow : 4));
}

long mlk_depthwise_nhwc_short_groups(const mlk_conv *p) {
  if (!mlk_use_avx512_() || p->out_c != p->in_c || p->groups != p->in_c || mlk_depthwise_nhwc_flat_ok_(p)) return 0;
  int lo, hi, inner;
  mlk_columns_inside(p, &lo, &hi);
  const int span = dwh_spans(p);
  long groups = 0;
  for (int ow = 0; ow < p->out_w; ow += dwh_group(p, span, lo, hi, ow, &inner)) groups += inner != 2;
  return groups * ((p->out_c + 31) / 32) * p->out_h * p->batch;
}

// Depthwise over NHWC data (multiplier 1): channels as vectors. Pixels whose window lies inside
// the row go eight at a time (3- and 5-wide windows, dilation 1: dwh_span, 16 sums in flight);
// the others (the row's ends, other windows) four at a time with taps checked near the ends.
// Why this shape (AMD EPYC Zen 4, in the model, where the output is not in cache):
// - several pixels at a time: one pixel's channels alone left 9 dependent FMAs per vector
//   (harness: 144 x 56x56 0.382 -> 0.207 ms with four pixels);
// - pixel groups outermost, so that a group's output is one contiguous run: channel blocks
//   outermost swept each output row once per block, 64 bytes a pixel (144 x 56x56 0.52 -> 0.36);
// - plain loads and stores on whole blocks of 32 channels: with the mask picked at run time on
//   every load (load16, which becomes a masked load) the same loop ran 1.3-1.9x slower; with
//   plain ones the Keras MobileNetV2's 3x3 layers took 0.74 of the four-pixel masked form's time.
// Loading each input column once for all its taps (fewer loads) measured no faster.
// Each output is the bias plus its taps in (kh, kw) order, as in the scalar kernel.
AVX512 void mlk_depthwise_nhwc_row_avx512_(const mlk_conv *p, const float *xn, const float *w, const float *bias, float *yn,
                                           int oh, mlk_epilogue act) {
  const int C = p->out_c;
  const vclamp cl = clamp_of(act);
  int kh0, kh1;
  mlk_taps_inside(oh * p->stride_h - p->pad_top, p->k_h, p->dil_h, p->in_h, &kh0, &kh1);
  // Output columns whose taps all lie inside the row: [lo, hi).
  int lo, hi;
  mlk_columns_inside(p, &lo, &hi);
  const int span = dwh_spans(p);
  for (int ow = 0; ow < p->out_w;) {
    int inner;
    const int np = dwh_group(p, span, lo, hi, ow, &inner);
    if (inner == 2) {
      float *const out = yn + ((size_t)oh * p->out_w + ow) * C;
      if (p->k_w == 3 && p->stride_w == 1) dwh_span_all(3, 1, p, xn, w, bias, kh0, kh1, oh, ow, out, cl);
      else if (p->k_w == 3) dwh_span_all(3, 2, p, xn, w, bias, kh0, kh1, oh, ow, out, cl);
      else if (p->stride_w == 1) dwh_span_all(5, 1, p, xn, w, bias, kh0, kh1, oh, ow, out, cl);
      else dwh_span_all(5, 2, p, xn, w, bias, kh0, kh1, oh, ow, out, cl);
      ow += DWS_NP;
      continue;
    }
    for (int c0 = 0; c0 < C; c0 += 32) {
      const __mmask16 m0 = lanes_inside(c0, C), m1 = lanes_inside(c0 + 16, C);
      const __m512 b0 = bias ? load16(m0, bias + c0) : _mm512_setzero_ps();
      const __m512 b1 = bias && m1 ? load16(m1, bias + c0 + 16) : _mm512_setzero_ps();
      if (c0 + 32 <= C) {
        if (inner) dwh_pixels(4, 2, 0, 1, p, xn, w, kh0, kh1, oh, ow, 4, c0, m0, m1, b0, b1, yn, cl);
        else dwh_pixels(4, 2, 1, 1, p, xn, w, kh0, kh1, oh, ow, np, c0, m0, m1, b0, b1, yn, cl);
      } else if (m1) {
        if (inner) dwh_pixels(4, 2, 0, 0, p, xn, w, kh0, kh1, oh, ow, 4, c0, m0, m1, b0, b1, yn, cl);
        else dwh_pixels(4, 2, 1, 0, p, xn, w, kh0, kh1, oh, ow, np, c0, m0, m1, b0, b1, yn, cl);
      } else {
        if (inner) dwh_pixels(4, 1, 0, 0, p, xn, w, kh0, kh1, oh, ow, 4, c0, m0, m1, b0, b1, yn, cl);
        else dwh_pixels(4, 1, 1, 0, p, xn, w, kh0, kh1, oh, ow, np, c0, m0, m1, b0, b1, yn, cl);
      }
    }
    ow += np;
  }
}

// Depthwise over NHWC data with few channels (C = 1, 2, 4, 8 or 16) and stride 1: per-pixel
// vectors would be mostly empty, so an output row is taken flat, as out_w * C floats, 16 at a
// time. Tap (kh, kw) reads the input row flat at a fixed shift of (kw*dil - pad_left) * C, and
// its weights form a pattern repeating every C lanes. Loads are masked to the input row.
AVX512 static void flat_row(const mlk_conv *p, const float *xn, const float *w, const float *bias, float *out, int oh,
                            mlk_epilogue act);

AVX512 void mlk_depthwise_nhwc_row_flat_avx512_(const mlk_conv *p, const float *xn, const float *w, const float *bias,
                                                float *yn, int oh, mlk_epilogue act) {
  flat_row(p, xn, w, bias, yn + (size_t)oh * p->out_w * p->out_c, oh, act);
}

// A convolution to a single output channel (segmentation heads) over C = 1..16 input channels:
// the depthwise flat row above gives each pixel's per-channel partial sums over the taps (the
// OHWI weights of one output channel are laid out like depthwise 1HWC weights); summing each
// pixel's C lanes, plus the bias, gives the output.
AVX512 void mlk_conv_nhwc_row_single_avx512_(const mlk_conv *p, const float *xn, const float *w, const float *bias,
                                             float *yn, int oh, mlk_epilogue act) {
  mlk_conv q = *p;
  q.out_c = q.groups = p->in_c;
  const int C = p->in_c;
  float partial[DW_FLAT_MAX];
  const mlk_epilogue none = {0, 0, 0};
  flat_row(&q, xn, w, NULL, partial, oh, none);
  float *out = yn + (size_t)oh * p->out_w;
  for (int px = 0; px < p->out_w; px++) {
    float v = bias ? bias[0] : 0.0f;
    for (int c = 0; c < C; c++) v += partial[px * C + c];
    out[px] = v;
  }
  if (act.kind != 4) mlk_activate(out, (size_t)p->out_w, act.kind, act.lo, act.hi);
}

int mlk_conv_nhwc_single_ok_(const mlk_conv *p) {
  mlk_conv q = *p;
  q.out_c = q.groups = p->in_c;
  return p->out_c == 1 && p->groups == 1 && mlk_depthwise_nhwc_flat_ok_(&q) && (long)p->out_w * p->in_c <= DW_FLAT_MAX;
}

// A 1x1 NHWC convolution with few channels on both sides (O = 2, 4 or 8 outputs, P = 16 / O
// pixels per vector, P * C <= 32 inputs): each vector holds P pixels' outputs. The P pixels'
// inputs (one or two vectors) are loaded once; for each input channel c a permute spreads
// x[pixel][c] over that pixel's O lanes, and one FMA adds it times W[o][c].
int mlk_conv1x1_nhwc_small_ok_(const mlk_conv *p) {
  const int o = p->out_c, c = p->in_c;
  return (o == 2 || o == 4 || o == 8) && (16 / o) * c <= 32 && p->groups == 1 && p->k_h == 1 && p->k_w == 1 &&
         p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 && p->pad_left == 0 && p->out_h == p->in_h &&
         p->out_w == p->in_w;
}

AVX512 void mlk_conv1x1_nhwc_small_avx512_(const mlk_conv *p, const float *x, const float *w, const float *bias, float *y,
                                           long px0, long npx, mlk_epilogue act) {
  const int O = p->out_c, C = p->in_c, P = 16 / O;
  float tmp[16];
  __m512i idx[32];
  __m512 wv[32];
  for (int c = 0; c < C; c++) {
    int ii[16];
    for (int l = 0; l < 16; l++) { ii[l] = (l / O) * C + c; tmp[l] = w[(size_t)(l % O) * C + c]; }
    idx[c] = _mm512_loadu_si512(ii);
    wv[c] = _mm512_loadu_ps(tmp);
  }
  for (int l = 0; l < 16; l++) tmp[l] = bias ? bias[l % O] : 0.0f;
  const __m512 vb = _mm512_loadu_ps(tmp);
  const vclamp cl = clamp_of(act);
  const long in_end = (px0 + npx) * C, out_end = (px0 + npx) * O;
  for (long px = px0; px < px0 + npx; px += P) {
    const long a = px * C;
    const __m512 t0 = load16(lanes_inside(a, in_end), x + a);
    const __m512 t1 = load16(lanes_inside(a + 16, in_end), x + a + 16);
    __m512 acc = vb;
    for (int c = 0; c < C; c++) acc = _mm512_fmadd_ps(_mm512_permutex2var_ps(t0, idx[c], t1), wv[c], acc);
    acc = apply_clamp(acc, cl);
    store16(y + px * O, lanes_inside(px * O, out_end), acc);
  }
}

AVX512 static void flat_row(const mlk_conv *p, const float *xn, const float *w, const float *bias, float *out, int oh,
                            mlk_epilogue act) {
  const int C = p->out_c, taps = p->k_h * p->k_w;
  const long in_len = (long)p->in_w * C, out_len = (long)p->out_w * C;
  const vclamp cl = clamp_of(act);
  float pattern[16];
  for (int i = 0; i < 16; i++) pattern[i] = bias ? bias[i % C] : 0.0f;
  const __m512 vb = _mm512_loadu_ps(pattern);
  __m512 wv[DW_MAX_KW * DW_MAX_KW];
  for (int t = 0; t < taps; t++) {
    for (int i = 0; i < 16; i++) pattern[i] = w[(size_t)t * C + i % C];
    wv[t] = _mm512_loadu_ps(pattern);
  }
  // Blocks whose every tap lies inside the row load and store whole vectors: the masks worked
  // out per load (and the branch on each) had made the kernel wait on scalar work, not on its
  // FMAs or memory (pose_landmark's 256x256x8 3x3: 0.54 ms).
  const long reach_lo = (long)p->pad_left * C, reach_hi = ((long)(p->k_w - 1) * p->dil_w - p->pad_left) * C;
  for (long f0 = 0; f0 < out_len; f0 += 16 * 8) {
    __m512 acc[8];
    for (int c = 0; c < 8; c++) acc[c] = vb;
    if (f0 - reach_lo >= 0 && f0 + reach_hi + 16 * 8 <= in_len && f0 + 16 * 8 <= out_len) {
      for (int kh = 0; kh < p->k_h; kh++) {
        const int ih = oh * p->stride_h - p->pad_top + kh * p->dil_h;
        if (ih < 0 || ih >= p->in_h) continue;
        const float *row = xn + (size_t)ih * in_len;
        for (int kw = 0; kw < p->k_w; kw++) {
          const float *src = row + f0 + ((long)kw * p->dil_w - p->pad_left) * C;
          const __m512 wt = wv[kh * p->k_w + kw];
#pragma clang loop unroll(full)
          for (int c = 0; c < 8; c++) acc[c] = _mm512_fmadd_ps(wt, _mm512_loadu_ps(src + 16 * c), acc[c]);
        }
      }
#pragma clang loop unroll(full)
      for (int c = 0; c < 8; c++) _mm512_storeu_ps(out + f0 + 16 * c, apply_clamp(acc[c], cl));
      continue;
    }
    for (int kh = 0; kh < p->k_h; kh++) {
      const int ih = oh * p->stride_h - p->pad_top + kh * p->dil_h;
      if (ih < 0 || ih >= p->in_h) continue;
      const float *row = xn + (size_t)ih * in_len;
      for (int kw = 0; kw < p->k_w; kw++) {
        const long base = f0 + ((long)kw * p->dil_w - p->pad_left) * C;
        const __m512 wt = wv[kh * p->k_w + kw];
#pragma clang loop unroll(full)
        for (int c = 0; c < 8; c++)
          acc[c] = _mm512_fmadd_ps(wt, load16(lanes_inside(base + 16 * c, in_len), row + base + 16 * c), acc[c]);
      }
    }
#pragma clang loop unroll(full)
    for (int c = 0; c < 8; c++) {
      acc[c] = apply_clamp(acc[c], cl);
      store16(out + f0 + 16 * c, lanes_inside(f0 + 16 * c, out_len), acc[c]);
    }
  }
}

int mlk_depthwise_nhwc_flat_ok_(const mlk_conv *p) {
  const int C = p->out_c;
  return p->in_c == C && (C == 1 || C == 2 || C == 4 || C == 8 || C == 16) && p->stride_w == 1 &&
         p->k_h <= DW_MAX_KW && p->k_w <= DW_MAX_KW;
}

#endif
