// Shared by the AVX-512 kernel files: the target attribute, the clamping epilogue as vectors,
// masked loads and stores. Each such file compiles its body only where MLK_AVX512_BUILD is 1
// (x86-64 with GCC or Clang); avx512_stubs.c stands in for them elsewhere.
#ifndef MODELLENS_CKERNELS_AVX512_H
#define MODELLENS_CKERNELS_AVX512_H

#include "internal.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define MLK_AVX512_BUILD 1
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,fma")))

// The clamping activations (kinds 1, 2, 3, 5 of mlk_activate) as vectors: max(x, lo), then
// min(., hi) unless the kind is Relu. As mlk_activate, a NaN becomes lo (max returns its second
// operand). Kind 4 (tanh) is left to mlk_activate.
typedef struct { __m512 lo, hi; int on, upper; } vclamp;

AVX512 static inline __attribute__((always_inline)) vclamp clamp_of(mlk_epilogue act) {
  const float lo = act.kind == 5 ? act.lo : (act.kind == 3 ? -1.0f : 0.0f);
  const float hi = act.kind == 5 ? act.hi : (act.kind == 2 ? 6.0f : (act.kind == 3 ? 1.0f : 0.0f));
  const int on = act.kind != 0 && act.kind != 4;
  return (vclamp){_mm512_set1_ps(lo), _mm512_set1_ps(hi), on, on && act.kind != 1};
}

AVX512 static inline __attribute__((always_inline)) __m512 apply_clamp(__m512 v, vclamp c) {
  if (c.on) {
    v = _mm512_max_ps(v, c.lo);
    if (c.upper) v = _mm512_min_ps(v, c.hi);
  }
  return v;
}

// Masked loads and stores that miss the cache run about 2.5x slower on this CPU than plain ones
// (4.8 MB streamed from L3: masked loads 0.42 ms, plain 0.14 ms; masked stores 0.38 ms, plain
// 0.16 ms): they seem to get no memory-level parallelism. Full masks therefore take the plain
// instruction; only edges use masks.
// A full mask takes the plain load; others fill their masked-off lanes from `fill` (load16: zero).
AVX512 static inline __attribute__((always_inline)) __m512 load_or(__m512 fill, __mmask16 m, const float *p) {
  return m == 0xFFFF ? _mm512_loadu_ps(p) : _mm512_mask_loadu_ps(fill, m, p);
}

AVX512 static inline __attribute__((always_inline)) __m512 load16(__mmask16 m, const float *p) {
  return load_or(_mm512_setzero_ps(), m, p);
}

AVX512 static inline __attribute__((always_inline)) void store16(float *p, __mmask16 m, __m512 v) {
  if (m == 0xFFFF) _mm512_storeu_ps(p, v);
  else _mm512_mask_storeu_ps(p, m, v);
}
// Lanes i of a 16-wide load at `base` with 0 <= base + i < n (a row's edges: masked-off lanes
// read as zero and do not fault).
AVX512 static inline __mmask16 lanes_inside(long base, long n) {
  long lo = base < 0 ? -base : 0, hi = n - base;
  if (hi > 16) hi = 16;
  if (lo >= hi) return 0;
  return (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}

// Depthwise geometry limits, shared by the NCHW and NHWC depthwise files.
#define DW_MAX_KW 16
#define DW_FLAT_GROUP 4   // output vectors summed at once on the flat path (8 and 12 measured slower)
#define DW_FLAT_AHEAD 16   // vectors ahead that the flat path prefetches
#define DW_FLAT_MAX 16384   // floats of one flat row a single-output-channel conv sums on the stack
// Load masks for the output chunks starting at column ow0 (up to 8 chunks of 16): m0[kw * 8 + c]
// covers the inputs of tap column kw for chunk c (the first 16 at stride 2), m1 the next 16.
AVX512 static inline void window_masks(const mlk_conv *p, int ow0, int nch, __mmask16 *m0, __mmask16 *m1) {
  for (int kw = 0; kw < p->k_w; kw++)
    for (int c = 0; c < 8; c++) {
      const long base = (long)(ow0 + 16 * c) * p->stride_w - p->pad_left + (long)kw * p->dil_w;
      m0[kw * 8 + c] = c < nch ? lanes_inside(base, p->in_w) : 0;
      m1[kw * 8 + c] = c < nch ? lanes_inside(base + 16, p->in_w) : 0;
    }
}

// dst[i * ldd + c] = src[c * lds + i] for i, c < 16: a 16 x 16 block transposed in registers
// (unpack within 128-bit lanes, then two rounds of lane shuffles).
// r[i] (row i of a 16 x 16 block) -> o[j] (column j).
AVX512 static inline __attribute__((always_inline)) void transpose16_regs(__m512 *r, __m512 *o) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
    r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
  }
  // r[4g + j], 128-bit lane L: column 4L + j of rows 4g .. 4g+3. Column 4L + j of all 16 rows is
  // lane L of r[j], r[4 + j], r[8 + j], r[12 + j], gathered by two rounds of lane shuffles (0x88
  // keeps lanes 0 and 2 of each source, 0xDD lanes 1 and 3).
  for (int j = 0; j < 4; j++) {
    const __m512 u = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x88), v = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xDD);
    const __m512 u2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x88), v2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xDD);
    o[j] = _mm512_shuffle_f32x4(u, u2, 0x88);
    o[8 + j] = _mm512_shuffle_f32x4(u, u2, 0xDD);
    o[4 + j] = _mm512_shuffle_f32x4(v, v2, 0x88);
    o[12 + j] = _mm512_shuffle_f32x4(v, v2, 0xDD);
  }
}

AVX512 static inline __attribute__((always_inline)) void transpose16(const float *src, long lds, float *dst, long ldd) {
  __m512 r[16], o[16];
  for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + (long)i * lds);
  transpose16_regs(r, o);
  for (int j = 0; j < 16; j++) _mm512_storeu_ps(dst + (long)j * ldd, o[j]);
}

#else
#define MLK_AVX512_BUILD 0
#endif

#endif
