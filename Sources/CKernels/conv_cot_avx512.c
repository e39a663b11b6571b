// AVX-512 channels-as-vectors convolution strips (output channels in the vector lanes), their
// weight panels, input interleaving and the stores back into NCHW or channel-blocked planes.
#include "avx512.h"

#if MLK_AVX512_BUILD

// Output channels as vectors: 7 pixels x 32 channels in 14 accumulators. Per step of k, two
// vector loads of the weight panel (contiguous), one broadcast per pixel (the pixels of a strip
// lie s floats apart in the channel-blocked input: 16, or 32 at stride 2), 14 FMAs; in the first
// npf steps also a request for line k of pf (weights a later strip reads).
AVX512 static inline __attribute__((always_inline)) void cot_strip(const int n, const int s, int kc, const float *restrict x,
                                                                   const long *restrict off, const float *restrict wt,
                                                                   float *restrict ct, int first, const float *pf, int npf) {
  __m512 c0[MLK_COT_PIXELS], c1[MLK_COT_PIXELS];
#pragma clang loop unroll(full)
  for (int i = 0; i < n; i++) {
    c0[i] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(ct + 32 * i);
    c1[i] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(ct + 32 * i + 16);
  }
#pragma clang loop unroll(disable)
  for (int k = 0; k < kc; k++) {
    const __m512 b0 = _mm512_loadu_ps(wt + 32 * k), b1 = _mm512_loadu_ps(wt + 32 * k + 16);
    const float *xk = x + off[k];
    if (k < npf) _mm_prefetch((const char *)(pf + 16 * k), _MM_HINT_T0);
#pragma clang loop unroll(full)
    for (int i = 0; i < n; i++) {
      const __m512 a = _mm512_set1_ps(xk[s * i]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
  }
#pragma clang loop unroll(full)
  for (int i = 0; i < n; i++) {
    _mm512_storeu_ps(ct + 32 * i, c0[i]);
    _mm512_storeu_ps(ct + 32 * i + 16, c1[i]);
  }
}

#define COT_CASE(N) \
  case N: \
    if (s == 32) cot_strip(N, 32, kc, x, off, wt, ct, first, pf, npf); \
    else cot_strip(N, 16, kc, x, off, wt, ct, first, pf, npf); \
    break;

AVX512 void mlk_cot_strip_avx512_(int n, int s, int kc, const float *x, const long *off, const float *wt, float *ct,
                                  int first, const float *pf, int npf) {
  switch (n) {
    COT_CASE(7) COT_CASE(6) COT_CASE(5) COT_CASE(4) COT_CASE(3) COT_CASE(2) COT_CASE(1)
    default: break;
  }
}

// The weight panel: 16 x 16 blocks transposed in registers; the ragged end of k and a partial
// panel go element by element.
AVX512 void mlk_cot_pack_avx512_(int kk, int nrows, const float *w, long ldw, float *wt) {
  int k0 = 0;
  if (nrows == 32)
    for (; k0 + 16 <= kk; k0 += 16)
      for (int half = 0; half < 2; half++) transpose16(w + (long)(16 * half) * ldw + k0, ldw, wt + (long)k0 * 32 + 16 * half, 32);
  for (int k = k0; k < kk; k++)
    for (int c = 0; c < 32; c++) wt[(long)k * 32 + c] = c < nrows ? w[(long)c * ldw + k] : 0.0f;
}

// The channel-blocked input: 16 pixels at a time by the same transposition; a partial block of
// channels and the row's last pixels element by element (a masked transposition for those
// measured no faster on 14x14 and 28x28 planes: the copy is small beside the convolution).
AVX512 void mlk_interleave16_avx512_(const float *src, long lds, int nch, int n, float *dst) {
  int i = 0;
  if (nch == 16)
    for (; i + 16 <= n; i += 16) transpose16(src + i, lds, dst + (long)i * 16, 16);
  for (; i < n; i++)
    for (int c = 0; c < 16; c++) dst[(long)i * 16 + c] = c < nch ? src[(long)c * lds + i] : 0.0f;
}

// The sums [pixels][32] into the NCHW output: y[c][q] = act(ct[q][c] * scale[c] + bias[c] +
// res[c][q]). Blocks of 16 pixels x 16 channels are transposed in registers; the rest (a last
// partial block of pixels or channels) is gathered a channel and 16 pixels at a time. (All
// gathered, the store took 6.5% of a 3x3 64->64 on 56x56.)
AVX512 static void cot_store_gathered(int q0, int q1, int c0, int c1, long ld, const float *ct, const float *scale,
                                      const float *bias, const float *res, float *y, vclamp cl) {
  const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(32));
  for (int c = c0; c < c1; c++) {
    const __m512 s = _mm512_set1_ps(scale ? scale[c] : 1.0f), b = _mm512_set1_ps(bias ? bias[c] : 0.0f);
    float *yc = y + (size_t)c * ld;
    const float *rc = res ? res + (size_t)c * ld : NULL;
    for (int q = q0; q < q1; q += 16) {
      const __mmask16 m = q1 - q >= 16 ? 0xFFFF : (__mmask16)((1u << (q1 - q)) - 1);
      __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, rows, ct + (size_t)q * 32 + c, 4);
      v = scale ? _mm512_fmadd_ps(v, s, b) : _mm512_add_ps(v, b);
      if (rc) v = _mm512_add_ps(v, load16(m, rc + q));
      store16(yc + q, m, apply_clamp(v, cl));
    }
  }
}

AVX512 void mlk_cot_store_avx512_(int hw, long ld, int nco, const float *ct, const float *scale, const float *bias,
                                  const float *res, float *y, mlk_epilogue act) {
  const vclamp cl = clamp_of(act);
  const int hw16 = hw / 16 * 16, nco16 = nco / 16 * 16;
  for (int h = 0; h < nco16; h += 16) {
    __m512 s[16], b[16];
    for (int c = 0; c < 16; c++) {
      s[c] = _mm512_set1_ps(scale ? scale[h + c] : 1.0f);
      b[c] = _mm512_set1_ps(bias ? bias[h + c] : 0.0f);
    }
    for (int q = 0; q < hw16; q += 16) {
      __m512 r[16], o[16];
      for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(ct + (size_t)(q + i) * 32 + h);
      transpose16_regs(r, o);
      for (int c = 0; c < 16; c++) {
        __m512 v = scale ? _mm512_fmadd_ps(o[c], s[c], b[c]) : _mm512_add_ps(o[c], b[c]);
        if (res) v = _mm512_add_ps(v, _mm512_loadu_ps(res + (size_t)(h + c) * ld + q));
        _mm512_storeu_ps(y + (size_t)(h + c) * ld + q, apply_clamp(v, cl));
      }
    }
  }
  if (hw16 < hw) cot_store_gathered(hw16, hw, 0, nco16, ld, ct, scale, bias, res, y, cl);
  if (nco16 < nco) cot_store_gathered(0, hw, nco16, nco, ld, ct, scale, bias, res, y, cl);
}

// The sums [pixels][32] into channel-blocked output ([C/16][hw][16]): each pixel's 16 channels
// of a half panel are one vector in both, so the store is a straight pass (no transposition).
AVX512 void mlk_cot_store_blocked_avx512_(int hw, long ld, int nco, const float *ct, const float *scale, const float *bias,
                                          const float *res, float *y, mlk_epilogue act) {
  const vclamp cl = clamp_of(act);
  for (int h = 0; h < nco; h += 16) {
    const __m512 s = scale ? _mm512_loadu_ps(scale + h) : _mm512_set1_ps(1.0f);
    const __m512 b = bias ? _mm512_loadu_ps(bias + h) : _mm512_setzero_ps();
    float *yh = y + (size_t)(h / 16) * ld * 16;
    const float *rh = res ? res + (size_t)(h / 16) * ld * 16 : NULL;
    for (int q = 0; q < hw; q++) {
      __m512 v = _mm512_fmadd_ps(_mm512_loadu_ps(ct + (size_t)q * 32 + h), s, b);
      if (rh) v = _mm512_add_ps(v, _mm512_loadu_ps(rh + (size_t)q * 16));
      _mm512_storeu_ps(yh + (size_t)q * 16, apply_clamp(v, cl));
    }
  }
}

#endif
