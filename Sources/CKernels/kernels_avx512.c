// AVX-512 kernels, used when the CPU has it: a single-precision GEMM for the convolutions and
// a direct depthwise convolution.
//
// GEMM.
// Debian's OpenBLAS 0.3.21 runs its AVX2 (Haswell) kernels on this class of CPU: about
// 90-110 GFLOP/s per core where 512-bit FMA chains reach about 235. This kernel computes
// C = A * B with a 12 x 32 register tile (24 accumulators of 16 floats): per step of k it
// loads one row of 32 B values (two vectors), broadcasts 12 A values and issues 24 FMAs.
//
// Blocking: k in blocks of KC = 256. For each block and each 12-row strip of A, the strip (read
// where it lies, 12 x 256 floats) is multiplied with every 32-column panel of B, while the next
// strip is requested into L2. B arrives already packed in panels (the convolution writes its im2col
// straight into that form), so weights are read where they lie and never repacked.
// Strips whose rows lie a multiple of 4 KB apart (K = 1024, 2048, ...) map onto the same L1 sets,
// and were once copied to a buffer with another row stride (1024^2 x 256 standalone: 142-148 ->
// 199-204 GFLOP/s, before the strips were prefetched). Measured again in the eleventh session (harness, 1
// thread, hot / cold), reading them in place is faster: 2048->512 on 7x7 0.531 -> 0.475 / 0.626 ->
// 0.507 ms, 1024->2048 on 7x7 1.040 -> 0.913 / 1.245 -> 0.983, the 1024->2048 stride-2
// downsample 1.065 -> 0.944 / 1.268 -> 1.020, 1024->1024 on 16x16 2.39 -> 2.33, 1024->256 on
// 14x14 even. The copy had stalled on the weights from L3 or DRAM (11% of the downsample's time).
//
// Every element of C is the bias plus its products summed in k order, whatever the tiling or
// thread count, so results do not depend on how work is shared out. (One exception in order, not
// in determinism: the last column of a 48 + 1 tile, micro49, and the last 1-4 columns of a B of
// width 32q + 1..4, microtail, sum lane-wise along k and then as a tree; which columns take those
// tiles depends on the shape only.)
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

#define MR 12
#define MR49 6   // rows of a 48 + 1 column tile (micro49)
#define NR 32
#define KC MLK_GEMM_KC
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

// Where a wide tile's two column vectors go in C (see wide_map): vector v's lanes in mask ma[v]
// go to c + oa[v] + lane, those in mb[v] to c + ob[v] + lane (offsets from the row's start).
// Plain tiles (no map) store their columns side by side.
typedef struct { __mmask16 ma[2], mb[2]; long oa[2], ob[2]; } outmap;

AVX512 static inline __attribute__((always_inline)) __m512 load_mapped(const float *row, const outmap *om, int v) {
  __m512 x = load16(om->ma[v], row + om->oa[v]);
  if (om->mb[v]) x = _mm512_mask_loadu_ps(x, om->mb[v], row + om->ob[v]);
  return x;
}

AVX512 static inline __attribute__((always_inline)) void store_mapped(float *row, const outmap *om, int v, __m512 x) {
  if (om->ma[v]) store16(row + om->oa[v], om->ma[v], x);
  if (om->mb[v]) _mm512_mask_storeu_ps(row + om->ob[v], om->mb[v], x);
}

// C[0..mr) x [0..32) of one tile: acc = (first ? bias : C) + sum_k a[k][r] * b[k][*]. A tile of
// 16 columns or fewer (nv = 1) keeps one vector per row (the last 5-16 columns of a B; 1-4 take
// microtail).
// Packed B (direct = 0): row k at bp + 32k. Direct B (direct = 1, or 2 for a tile of 32 full
// columns): row k at bp + boff[k], read with the tile's column masks (the rows are windows of the
// convolution's input).
AVX512 static inline __attribute__((always_inline)) void micro(const int direct, const int nv, const int mr, int kc,
                                                               const float *restrict ap, long lda,
                                                               const float *restrict bp, const long *restrict boff,
                                                               float *restrict c, long ldc, const outmap *om,
                                                               __mmask16 m0, __mmask16 m1, int first, int last,
                                                               const float *bias, const float *cbias, const float *scale,
                                                               const float *res, mlk_epilogue act,
                                                               const float *pf, long pflda, int pfrows, int pfirst, int pflines) {
  __m512 c0[MR], c1[MR];
#pragma clang loop unroll(full)
  for (int r = 0; r < mr; r++) {
    if (first && cbias) {
      c0[r] = load16(m0, cbias);
      c1[r] = nv == 2 ? load16(m1, cbias + 16) : _mm512_setzero_ps();
    } else if (first) {
      // With a channel scale the bias comes after it, at the end.
      c0[r] = c1[r] = bias && !scale ? _mm512_set1_ps(bias[r]) : _mm512_setzero_ps();
    } else if (om) {
      c0[r] = load_mapped(c + r * ldc, om, 0);
      c1[r] = nv == 2 ? load_mapped(c + r * ldc, om, 1) : _mm512_setzero_ps();
    } else {
      c0[r] = load16(m0, c + r * ldc);
      c1[r] = nv == 2 ? load16(m1, c + r * ldc + 16) : _mm512_setzero_ps();
    }
  }
  // Not unrolled: unrolled by two, clang spilled accumulators to the stack inside the loop.
#pragma clang loop unroll(disable)
  for (int k = 0; k < kc; k++) {
    __m512 b0, b1 = _mm512_setzero_ps();
    if (pfirst + k < pflines) {
      const int line = pfirst + k;
      _mm_prefetch((const char *)(pf + (line % pfrows) * pflda + (line / pfrows) * 16), _MM_HINT_T1);
    }
    if (direct == 2) {   // a full tile: plain loads (see load16), no test in the loop
      const float *row = bp + boff[k];
      b0 = _mm512_loadu_ps(row);
      if (nv == 2) b1 = _mm512_loadu_ps(row + 16);
    } else if (direct) {
      const float *row = bp + boff[k];
      b0 = _mm512_maskz_loadu_ps(m0, row);
      if (nv == 2) b1 = _mm512_maskz_loadu_ps(m1, row + 16);
    } else {
      b0 = _mm512_loadu_ps(bp + (long)k * NR);
      if (nv == 2) b1 = _mm512_loadu_ps(bp + (long)k * NR + 16);
    }
#pragma clang loop unroll(full)
    for (int r = 0; r < mr; r++) {
      const __m512 av = _mm512_set1_ps(ap[r * lda + k]);
      c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
      if (nv == 2) c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
    }
  }
  if (last && scale) {
#pragma clang loop unroll(full)
    for (int r = 0; r < mr; r++) {
      const __m512 a = _mm512_set1_ps(scale[r]), b = bias ? _mm512_set1_ps(bias[r]) : _mm512_setzero_ps();
      c0[r] = _mm512_fmadd_ps(c0[r], a, b);
      if (nv == 2) c1[r] = _mm512_fmadd_ps(c1[r], a, b);
    }
  }
  if (last && res && om) {
#pragma clang loop unroll(full)
    for (int r = 0; r < mr; r++) {
      c0[r] = _mm512_add_ps(c0[r], load_mapped(res + r * ldc, om, 0));
      if (nv == 2) c1[r] = _mm512_add_ps(c1[r], load_mapped(res + r * ldc, om, 1));
    }
  } else if (last && res) {
#pragma clang loop unroll(full)
    for (int r = 0; r < mr; r++) {
      c0[r] = _mm512_add_ps(c0[r], load16(m0, res + r * ldc));
      if (nv == 2) c1[r] = _mm512_add_ps(c1[r], load16(m1, res + r * ldc + 16));
    }
  }
  if (last && act.kind != 0 && act.kind != 4) {
    const vclamp cl = clamp_of(act);
#pragma clang loop unroll(full)
    for (int r = 0; r < mr; r++) {
      c0[r] = apply_clamp(c0[r], cl);
      if (nv == 2) c1[r] = apply_clamp(c1[r], cl);
    }
  }
  if (om) {
#pragma clang loop unroll(full)
    for (int r = 0; r < mr; r++) {
      store_mapped(c + r * ldc, om, 0, c0[r]);
      if (nv == 2) store_mapped(c + r * ldc, om, 1, c1[r]);
    }
    return;
  }
#pragma clang loop unroll(full)
  for (int r = 0; r < mr; r++) {
    store16(c + r * ldc, m0, c0[r]);
    if (nv == 2) store16(c + r * ldc + 16, m1, c1[r]);
  }
}

#define MICRO_ARGS kc, ap, lda, bp, boff, c, ldc, om, m0, m1, first, last, bias, cbias, scale, res, act, pf, pflda, pfrows, pfirst, pflines
#define MICRO_CASE(R) \
  case R: \
    if (m1 == 0) { \
      if (boff && m0 == 0xFFFF) micro(2, 1, R, MICRO_ARGS); \
      else if (boff) micro(1, 1, R, MICRO_ARGS); \
      else micro(0, 1, R, MICRO_ARGS); \
    } else if (boff && m0 == 0xFFFF && m1 == 0xFFFF) micro(2, 2, R, MICRO_ARGS); \
    else if (boff) micro(1, 2, R, MICRO_ARGS); \
    else micro(0, 2, R, MICRO_ARGS); \
    break;

AVX512 static void micro_dispatch(int mr, int kc, const float *ap, long lda, const float *bp, const long *boff, float *c,
                                  long ldc, const outmap *om, __mmask16 m0, __mmask16 m1, int first, int last, const float *bias,
                                  const float *cbias, const float *scale, const float *res, mlk_epilogue act,
                                  const float *pf, long pflda, int pfrows, int pfirst, int pflines) {
  switch (mr) {
    MICRO_CASE(12) MICRO_CASE(11) MICRO_CASE(10) MICRO_CASE(9) MICRO_CASE(8) MICRO_CASE(7)
    MICRO_CASE(6) MICRO_CASE(5) MICRO_CASE(4) MICRO_CASE(3) MICRO_CASE(2) MICRO_CASE(1)
    default: break;
  }
}

// The last 49 columns of a packed B whose width is 32q + 17 (a 7x7 plane: 49 = 32 + 17), as
// 48 + 1: with 32-column tiles the 17 columns of the last panel cost a whole tile (64 computed
// for 49). Here rows of up to 6 keep three column vectors (b0p: a whole panel, b1p: the first 16
// of the next) and, for column 48, one accumulator per row that runs along k instead: the row's
// next 16 A values (just broadcast, so in L1) times the column's, `col` (that column of B,
// contiguous), folded into the column's one value at the end. 24 accumulators; per 16 steps of k
// 294 FMAs for 6 x 49 x 16 products, where the two tiles took 384. The fused column sums
// lane-wise and then as a tree, not in plain k order, but the same way for any thread count.
AVX512 static inline __attribute__((always_inline)) void micro49(const int mr, int kc, const float *restrict ap, long lda,
                                                                 const float *restrict b0p, const float *restrict b1p,
                                                                 const float *restrict col, float *restrict c, long ldc,
                                                                 int first, int last, const float *bias, const float *cbias,
                                                                 const float *scale, const float *res, mlk_epilogue act,
                                                                 const float *pf, long pflda, int pfrows, int pfirst,
                                                                 int pflines) {
  __m512 c0[MR49], c1[MR49], c2[MR49], d[MR49];
#pragma clang loop unroll(full)
  for (int r = 0; r < mr; r++) {
    if (first && cbias) {
      c0[r] = _mm512_loadu_ps(cbias);
      c1[r] = _mm512_loadu_ps(cbias + 16);
      c2[r] = _mm512_loadu_ps(cbias + 32);
      d[r] = _mm512_maskz_loadu_ps(1, cbias + 48);
    } else if (first) {
      c0[r] = c1[r] = c2[r] = bias && !scale ? _mm512_set1_ps(bias[r]) : _mm512_setzero_ps();
      d[r] = _mm512_maskz_mov_ps(1, c0[r]);
    } else {
      c0[r] = _mm512_loadu_ps(c + r * ldc);
      c1[r] = _mm512_loadu_ps(c + r * ldc + 16);
      c2[r] = _mm512_loadu_ps(c + r * ldc + 32);
      d[r] = _mm512_maskz_loadu_ps(1, c + r * ldc + 48);
    }
  }
  for (int k0 = 0; k0 < kc; k0 += 16) {
    const int kn = kc - k0 < 16 ? kc - k0 : 16;
#pragma clang loop unroll(disable)
    for (int k = k0; k < k0 + kn; k++) {
      if (pfirst + k < pflines) {
        const int line = pfirst + k;
        _mm_prefetch((const char *)(pf + (line % pfrows) * pflda + (line / pfrows) * 16), _MM_HINT_T1);
      }
      const __m512 b0 = _mm512_loadu_ps(b0p + (long)k * NR), b1 = _mm512_loadu_ps(b0p + (long)k * NR + 16);
      const __m512 b2 = _mm512_loadu_ps(b1p + (long)k * NR);
#pragma clang loop unroll(full)
      for (int r = 0; r < mr; r++) {
        const __m512 av = _mm512_set1_ps(ap[r * lda + k]);
        c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
        c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
        c2[r] = _mm512_fmadd_ps(av, b2, c2[r]);
      }
    }
    const __mmask16 km = kn == 16 ? 0xFFFF : (__mmask16)((1u << kn) - 1);
    const __m512 xv = load16(km, col + k0);
#pragma clang loop unroll(full)
    for (int r = 0; r < mr; r++) d[r] = _mm512_fmadd_ps(load16(km, ap + r * lda + k0), xv, d[r]);
  }
  // Column 48 joins the epilogue as lane 0 of a fourth vector, stored with a one-lane mask.
  __m512 c3[MR49];
#pragma clang loop unroll(full)
  for (int r = 0; r < mr; r++) c3[r] = _mm512_set1_ps(_mm512_reduce_add_ps(d[r]));
  if (last && scale) {
#pragma clang loop unroll(full)
    for (int r = 0; r < mr; r++) {
      const __m512 a = _mm512_set1_ps(scale[r]), b = bias ? _mm512_set1_ps(bias[r]) : _mm512_setzero_ps();
      c0[r] = _mm512_fmadd_ps(c0[r], a, b);
      c1[r] = _mm512_fmadd_ps(c1[r], a, b);
      c2[r] = _mm512_fmadd_ps(c2[r], a, b);
      c3[r] = _mm512_fmadd_ps(c3[r], a, b);
    }
  }
  if (last && res) {
#pragma clang loop unroll(full)
    for (int r = 0; r < mr; r++) {
      c0[r] = _mm512_add_ps(c0[r], _mm512_loadu_ps(res + r * ldc));
      c1[r] = _mm512_add_ps(c1[r], _mm512_loadu_ps(res + r * ldc + 16));
      c2[r] = _mm512_add_ps(c2[r], _mm512_loadu_ps(res + r * ldc + 32));
      c3[r] = _mm512_add_ps(c3[r], _mm512_maskz_loadu_ps(1, res + r * ldc + 48));
    }
  }
  if (last && act.kind != 0 && act.kind != 4) {
    const vclamp cl = clamp_of(act);
#pragma clang loop unroll(full)
    for (int r = 0; r < mr; r++) {
      c0[r] = apply_clamp(c0[r], cl);
      c1[r] = apply_clamp(c1[r], cl);
      c2[r] = apply_clamp(c2[r], cl);
      c3[r] = apply_clamp(c3[r], cl);
    }
  }
#pragma clang loop unroll(full)
  for (int r = 0; r < mr; r++) {
    _mm512_storeu_ps(c + r * ldc, c0[r]);
    _mm512_storeu_ps(c + r * ldc + 16, c1[r]);
    _mm512_storeu_ps(c + r * ldc + 32, c2[r]);
    _mm512_mask_storeu_ps(c + r * ldc + 48, 1, c3[r]);
  }
}

#define MICRO49_ARGS kc, ap, lda, b0p, b1p, col, c, ldc, first, last, bias, cbias, scale, res, act, pf, pflda, pfrows, pfirst, pflines
AVX512 static void micro49_dispatch(int mr, int kc, const float *ap, long lda, const float *b0p, const float *b1p,
                                    const float *col, float *c, long ldc, int first, int last, const float *bias,
                                    const float *cbias, const float *scale, const float *res, mlk_epilogue act,
                                    const float *pf, long pflda, int pfrows, int pfirst, int pflines) {
  switch (mr) {
    case 6: micro49(6, MICRO49_ARGS); break;
    case 5: micro49(5, MICRO49_ARGS); break;
    case 4: micro49(4, MICRO49_ARGS); break;
    case 3: micro49(3, MICRO49_ARGS); break;
    case 2: micro49(2, MICRO49_ARGS); break;
    case 1: micro49(1, MICRO49_ARGS); break;
    default: break;
  }
}

// The last t = 1..4 columns of a B whose width is 32q + t (a 14x14 plane: 196 = 6 x 32 + 4). As a
// 16-column tile (nv = 1) they took 12 FMAs per step of k for 4 useful lanes of 16 (half a
// 32-column tile for a thirteenth of the columns). Here each (row, column) pair keeps one
// accumulator that runs along k instead: the row's next 16 A values times the column's 16 B
// values (`col`: those columns of B, contiguous, KC floats apart), summed across lanes at the end
// of the block. Rows of up to 6, 6 x 4 accumulators; per 16 steps of k, 24 FMAs where the tile
// took 192. As micro49's fused column, the sum is lane-wise and then a tree, the same for any
// thread count. Harness, 1 thread, hot / cold: ResNet50's 1024->256 on 14x14 0.496 -> 0.476 /
// 0.519 -> 0.495 ms, 256->1024 0.473 -> 0.450 / 0.533 -> 0.510, 1024->512 0.977 -> 0.930.
AVX512 static inline __attribute__((always_inline)) __m128 sum4(__m512 a, __m512 b, __m512 c, __m512 d) {
  const __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
  const __m256 b8 = _mm256_add_ps(_mm512_castps512_ps256(b), _mm512_extractf32x8_ps(b, 1));
  const __m256 c8 = _mm256_add_ps(_mm512_castps512_ps256(c), _mm512_extractf32x8_ps(c, 1));
  const __m256 d8 = _mm256_add_ps(_mm512_castps512_ps256(d), _mm512_extractf32x8_ps(d, 1));
  const __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a8, b8), _mm256_hadd_ps(c8, d8));
  return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));   // (sum a, sum b, sum c, sum d)
}

AVX512 static inline __attribute__((always_inline)) void microtail(const int t, const int mr, int kc,
                                                                   const float *restrict ap, long lda,
                                                                   const float *restrict col, float *restrict c, long ldc,
                                                                   int first, int last, const float *bias,
                                                                   const float *cbias, const float *scale, const float *res,
                                                                   mlk_epilogue act, const float *pf, long pflda, int pfrows,
                                                                   int pfirst, int pflines) {
  __m512 d[MR49][4];
#pragma clang loop unroll(full)
  for (int r = 0; r < mr; r++)
#pragma clang loop unroll(full)
    for (int j = 0; j < t; j++) d[r][j] = _mm512_setzero_ps();
  for (int k0 = 0; k0 < kc; k0 += 16) {
    const int kn = kc - k0 < 16 ? kc - k0 : 16;
    for (int line = pfirst + k0; line < pfirst + k0 + kn && line < pflines; line++)
      _mm_prefetch((const char *)(pf + (line % pfrows) * pflda + (line / pfrows) * 16), _MM_HINT_T1);
    const __mmask16 km = kn == 16 ? 0xFFFF : (__mmask16)((1u << kn) - 1);
    __m512 x[4];
#pragma clang loop unroll(full)
    for (int j = 0; j < t; j++) x[j] = load16(km, col + (long)j * KC + k0);
#pragma clang loop unroll(full)
    for (int r = 0; r < mr; r++) {
      const __m512 av = load16(km, ap + r * lda + k0);
#pragma clang loop unroll(full)
      for (int j = 0; j < t; j++) d[r][j] = _mm512_fmadd_ps(av, x[j], d[r][j]);
    }
  }
  const __mmask16 cm = (__mmask16)((1u << t) - 1);
  const __m512 zero = _mm512_setzero_ps();
#pragma clang loop unroll(full)
  for (int r = 0; r < mr; r++) {
    __m512 v = _mm512_zextps128_ps512(sum4(d[r][0], t > 1 ? d[r][1] : zero, t > 2 ? d[r][2] : zero, t > 3 ? d[r][3] : zero));
    if (first && cbias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(cm, cbias));
    else if (first && bias && !scale) v = _mm512_add_ps(v, _mm512_set1_ps(bias[r]));
    else if (!first) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(cm, c + r * ldc));
    if (last && scale) v = _mm512_fmadd_ps(v, _mm512_set1_ps(scale[r]), bias ? _mm512_set1_ps(bias[r]) : zero);
    if (last && res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(cm, res + r * ldc));
    if (last && act.kind != 0 && act.kind != 4) v = apply_clamp(v, clamp_of(act));
    _mm512_mask_storeu_ps(c + r * ldc, cm, v);
  }
}

#define MICROTAIL_ARGS kc, ap, lda, col, c, ldc, first, last, bias, cbias, scale, res, act, pf, pflda, pfrows, pfirst, pflines
#define MICROTAIL_CASE(R) \
  case R: \
    if (t == 4) microtail(4, R, MICROTAIL_ARGS); \
    else if (t == 3) microtail(3, R, MICROTAIL_ARGS); \
    else if (t == 2) microtail(2, R, MICROTAIL_ARGS); \
    else microtail(1, R, MICROTAIL_ARGS); \
    break;
AVX512 static void microtail_dispatch(int t, int mr, int kc, const float *ap, long lda, const float *col, float *c, long ldc,
                                      int first, int last, const float *bias, const float *cbias, const float *scale,
                                      const float *res, mlk_epilogue act, const float *pf, long pflda, int pfrows, int pfirst,
                                      int pflines) {
  switch (mr) {
    MICROTAIL_CASE(6) MICROTAIL_CASE(5) MICROTAIL_CASE(4) MICROTAIL_CASE(3) MICROTAIL_CASE(2) MICROTAIL_CASE(1)
    default: break;
  }
}

// Wide tiles: column j of the GEMM is wide column q0 + j of a convolution whose output rows are
// out_w of every wq wide columns (wq >= 16, so a vector meets at most one row end). C is then
// the output plane itself: column (oh, ow) at oh * out_w + ow, padding columns not stored.
typedef struct { long q0; int wq, out_w; } wide_map;

AVX512 static void map_wide(const wide_map *wm, long q, __mmask16 valid, __mmask16 *ma, long *oa, __mmask16 *mb, long *ob) {
  const long oh = q / wm->wq, ow = q % wm->wq, tail = wm->wq - ow;   // lanes [tail, 16) are in row oh + 1
  *ma = ow < wm->out_w ? (__mmask16)(valid & ((1u << (wm->out_w - ow < 16 ? wm->out_w - ow : 16)) - 1)) : 0;
  *oa = oh * wm->out_w + ow;
  *mb = 0;
  *ob = 0;
  if (tail < 16) {
    const long hi = tail + wm->out_w < 16 ? tail + wm->out_w : 16;
    *mb = (__mmask16)(valid & ((1u << hi) - 1) & ~((1u << tail) - 1));
    *ob = (oh + 1) * wm->out_w - tail;
  }
}

AVX512 static void gemm_blocked(int m, int width, int k, const float *a, long lda, const float *bp, const long *boff,
                                float *c, long ldc, const float *bias, const float *col_bias, const float *scale,
                                const float *res, mlk_epilogue act, int accumulate, int finish, const wide_map *wm) {
  // Packed B of width 32q + 17 ends in a 48 + 1 tile (micro49) from column fuse_at on.
  const int fuse_at = !boff && !wm && width >= 49 && width % NR == 17 ? width - 49 : -1;
  // B of width 32q + t, t <= 4, ends in t columns summed along k (microtail), from tail_at on.
  const int tail_n = wm ? 0 : width % NR, tail_at = tail_n >= 1 && tail_n <= 4 ? width - tail_n : -1;
  // The columns those tiles sum along k (micro49: column 48 of its tile; microtail: the last t),
  // each made contiguous along k once per block, KC floats apart (the two never meet in one B).
  const int along_at = fuse_at >= 0 ? fuse_at + 48 : tail_at, along_n = fuse_at >= 0 ? 1 : tail_n;
  float cols[4 * KC] __attribute__((aligned(64)));
  for (int pc = 0; pc < k; pc += KC) {
    const int kc = k - pc < KC ? k - pc : KC;
    const int first = pc == 0 && !accumulate, last = pc + kc == k && finish;
    if (along_at >= 0) {
      const float *panel = boff ? NULL : bp + (long)(along_at / NR) * k * NR + (long)pc * NR + along_at % NR;
      for (int q = 0; q < kc; q++)
        for (int j = 0; j < along_n; j++) cols[j * KC + q] = boff ? bp[boff[pc + q] + along_at + j] : panel[(long)q * NR + j];
    }
    for (int ir = 0; ir < m; ir += MR) {
      const int mr = m - ir < MR ? m - ir : MR;
      // A is read in place, also where its rows lie a multiple of 4 KB apart (see the header).
      const float *strip = a + (long)ir * lda + pc;
      const long sld = lda;
      // The next strip of A (weights read in place, often from L3 or DRAM) is fetched into L2
      // while this one computes, one line per step of k, spread over the strip's first tiles.
      const float *pf = a;
      int pfrows = 1, pflines = 0;
      if (ir + MR < m) {
        pf = a + (long)(ir + MR) * lda + pc;
        pfrows = m - ir - MR < MR ? m - ir - MR : MR;
        pflines = pfrows * ((kc + 15) / 16);
      } else if (pc + KC < k) {
        pf = a + pc + KC;
        pfrows = m < MR ? m : MR;
        pflines = pfrows * (((k - pc - KC < KC ? k - pc - KC : KC) + 15) / 16);
      }
      for (int jr = 0; jr < width; jr += NR) {
        if (jr == fuse_at) {   // the last 49 columns: two 6-row halves of 48 + 1 (micro49)
          const float *b0p = bp + (long)(jr / NR) * k * NR + (long)pc * NR, *b1p = b0p + (long)k * NR;
          for (int h = 0; h < mr; h += MR49)
            micro49_dispatch(mr - h < MR49 ? mr - h : MR49, kc, strip + (long)h * sld, sld, b0p, b1p, cols,
                             c + (long)(ir + h) * ldc + jr, ldc, first, last, bias ? bias + ir + h : NULL,
                             col_bias ? col_bias + jr : NULL, scale ? scale + ir + h : NULL,
                             res ? res + (long)(ir + h) * ldc + jr : NULL, act, pf, lda, pfrows, (jr / NR + h / MR49) * kc,
                             pflines);
          break;
        }
        if (jr == tail_at) {
          for (int h = 0; h < mr; h += MR49)
            microtail_dispatch(tail_n, mr - h < MR49 ? mr - h : MR49, kc, strip + (long)h * sld, sld, cols,
                               c + (long)(ir + h) * ldc + jr, ldc, first, last, bias ? bias + ir + h : NULL,
                               col_bias ? col_bias + jr : NULL, scale ? scale + ir + h : NULL,
                               res ? res + (long)(ir + h) * ldc + jr : NULL, act, pf, lda, pfrows, (jr / NR + h / MR49) * kc,
                               pflines);
          break;
        }
        const int nr = width - jr < NR ? width - jr : NR;
        const __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
        const __mmask16 m1 = nr >= 32 ? 0xFFFF : (nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1));
        const float *b = boff ? bp + jr : bp + (long)(jr / NR) * k * NR + (long)pc * NR;
        outmap om;
        if (wm)
          for (int v = 0; v < 2; v++)
            map_wide(wm, wm->q0 + jr + 16 * v, v ? m1 : m0, &om.ma[v], &om.oa[v], &om.mb[v], &om.ob[v]);
        micro_dispatch(mr, kc, strip, sld, b, boff ? boff + pc : NULL, c + (long)ir * ldc + (wm ? 0 : jr), ldc,
                       wm ? &om : NULL, m0,
                       m1, first, last, bias ? bias + ir : NULL, col_bias ? col_bias + jr : NULL,
                       scale ? scale + ir : NULL, res ? res + (long)ir * ldc + (wm ? 0 : jr) : NULL, act, pf, lda, pfrows, jr / NR * kc,
                       pflines);
      }
    }
  }
}

AVX512 void mlk_gemm_packed_avx512_(int m, int width, int k, const float *a, long lda, const float *bpanels, float *c,
                                    long ldc, const float *bias, const float *col_bias, const float *scale, const float *res,
                                    mlk_epilogue act, int accumulate, int finish) {
  gemm_blocked(m, width, k, a, lda, bpanels, NULL, c, ldc, bias, col_bias, scale, res, act, accumulate, finish, NULL);
}

AVX512 void mlk_gemm_direct_avx512_(int m, int width, int k, const float *a, long lda, const float *b, const long *boff,
                                    float *c, long ldc, const float *bias, const float *scale, const float *res,
                                    mlk_epilogue act) {
  gemm_blocked(m, width, k, a, lda, b, boff, c, ldc, bias, NULL, scale, res, act, 0, 1, NULL);
}

AVX512 void mlk_gemm_wide_avx512_(int m, int width, int k, const float *a, long lda, const float *b, const long *boff,
                                  long q0, int wq, int out_w, float *y, long ldy, const float *bias, const float *scale,
                                  const float *res, mlk_epilogue act) {
  const wide_map wm = {q0, wq, out_w};
  gemm_blocked(m, width, k, a, lda, b, boff, y, ldy, bias, NULL, scale, res, act, 0, 1, &wm);
}

// Depthwise convolution over one NCHW plane. An output row is cut into chunks of 16 columns,
// and up to 8 chunks are accumulated in registers at once; each tap adds one FMA per chunk.
// Stride 1 loads the inputs directly; stride 2 loads 32 and keeps the even lanes. Loads are
// masked to the input row (masked-off lanes read as zero and do not fault), so padding needs
// no copies; the masks depend only on the chunk and the tap column and are computed once.
// Each output is the bias plus its taps in (kh, kw) order.
AVX512 static inline __mmask16 lanes_inside(long base, long n) {
  // Lanes i of a 16-wide load at `base` with 0 <= base + i < n.
  long lo = base < 0 ? -base : 0, hi = n - base;
  if (hi > 16) hi = 16;
  if (lo >= hi) return 0;
  return (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}

#define DW_MAX_KW 16
#define DW_FLAT_GROUP 4   // output vectors summed at once on the flat path (8 and 12 measured slower)
#define DW_FLAT_AHEAD 16   // vectors ahead that the flat path prefetches
#define DW_FLAT_MAX 16384   // floats of one flat row a single-output-channel conv sums on the stack

// Load masks for the output chunks starting at column ow0 (up to 8 chunks of 16): m0[kw * 8 + c]
// covers the inputs of tap column kw for chunk c (the first 16 at stride 2), m1 the next 16.
AVX512 static void window_masks(const mlk_conv *p, int ow0, int nch, __mmask16 *m0, __mmask16 *m1) {
  for (int kw = 0; kw < p->k_w; kw++)
    for (int c = 0; c < 8; c++) {
      const long base = (long)(ow0 + 16 * c) * p->stride_w - p->pad_left + (long)kw * p->dil_w;
      m0[kw * 8 + c] = c < nch ? lanes_inside(base, p->in_w) : 0;
      m1[kw * 8 + c] = c < nch ? lanes_inside(base + 16, p->in_w) : 0;
    }
}

// `nr` output rows at a time (nch * nr <= 8 accumulators): narrow planes (7 or 14 columns, one
// chunk) would otherwise leave a single dependent chain of FMAs per row. A tap row outside the
// input is skipped by a zero load mask.
// k3 (stride 2, 3 taps wide, pad_left 1, no dilation): a tap row's 32 inputs per chunk are loaded
// once and split into even and odd lanes; tap 0 reads the odd lanes shifted by one (the previous
// chunk's last odd input in lane 0), tap 1 the even ones, tap 2 the odd ones. Two loads and three
// permutes per row and chunk instead of six loads and three permutes.
AVX512 static inline __attribute__((always_inline)) void dw_rows(const int nch, const int nr, const int sw, const int k3,
                                                                 const mlk_conv *p, const float *plane, const float *k,
                                                                 float b, float *dst, int ow0, const __mmask16 *m0,
                                                                 const __mmask16 *m1, mlk_epilogue act) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512i back = _mm512_setr_epi32(15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  const vclamp cl = clamp_of(act);
  const __m512 vb = _mm512_set1_ps(b);
  // The input columns this chunk group reads, for prefetching the next group's rows.
  const long col0 = (long)ow0 * sw - p->pad_left, ncols = (long)16 * nch * sw + (long)(p->k_w - 1) * p->dil_w;
  const int span = (nr - 1) * p->stride_h + (p->k_h - 1) * p->dil_h + 1;
  const int fresh = nr * p->stride_h < span ? nr * p->stride_h : span;   // rows a group reads that the last did not
  for (int oh0 = 0; oh0 < p->out_h; oh0 += nr) {
    // The rows that the group after next reads first, one line in 16 floats: the hardware
    // prefetcher does not cover the masked loads below when they miss (rows past the plane's
    // end are the next channel's).
    const long next = (long)(oh0 + 2 * nr) * p->stride_h - p->pad_top + span - fresh;
    if (sw == 2)
      for (int r = 0; r < fresh; r++)
      for (long col = 0; col < ncols; col += 16)
        _mm_prefetch((const char *)(plane + (next + r) * p->in_w + col0 + col), _MM_HINT_T0);
    __m512 acc[8];
#pragma clang loop unroll(full)
    for (int i = 0; i < nch * nr; i++) acc[i] = vb;
    for (int kh = 0; kh < p->k_h; kh++) {
      const float *rows[8];
      __mmask16 rmask[8];
#pragma clang loop unroll(full)
      for (int r = 0; r < nr; r++) {
        const int ih = (oh0 + r) * p->stride_h - p->pad_top + kh * p->dil_h;
        const int inside = ih >= 0 && ih < p->in_h && oh0 + r < p->out_h;
        rmask[r] = inside ? 0xFFFF : 0;
        rows[r] = plane + (size_t)(inside ? ih : 0) * p->in_w;
      }
      if (k3) {
        const __m512 w0 = _mm512_set1_ps(k[kh * 3]), w1 = _mm512_set1_ps(k[kh * 3 + 1]), w2 = _mm512_set1_ps(k[kh * 3 + 2]);
#pragma clang loop unroll(full)
        for (int r = 0; r < nr; r++) {
          const float *src = rows[r] + 2L * ow0;   // input 2 * ow: tap 1 of the chunk's first output
          __m512 prev = ow0 > 0 && rmask[r] ? _mm512_set1_ps(src[-1]) : _mm512_setzero_ps();
#pragma clang loop unroll(full)
          for (int c = 0; c < nch; c++) {
            const __m512 a = load16(m0[8 + c] & rmask[r], src + 32 * c), bb = load16(m1[8 + c] & rmask[r], src + 32 * c + 16);
            const __m512 e = _mm512_permutex2var_ps(a, even, bb), o = _mm512_permutex2var_ps(a, odd, bb);
            const __m512 os = _mm512_permutex2var_ps(prev, back, o);
            __m512 t = _mm512_fmadd_ps(w0, os, acc[r * nch + c]);
            t = _mm512_fmadd_ps(w1, e, t);
            acc[r * nch + c] = _mm512_fmadd_ps(w2, o, t);
            prev = o;
          }
        }
        continue;
      }
      for (int kw = 0; kw < p->k_w; kw++) {
        const __m512 wv = _mm512_set1_ps(k[kh * p->k_w + kw]);
        const long shift = (long)ow0 * sw - p->pad_left + (long)kw * p->dil_w;
#pragma clang loop unroll(full)
        for (int r = 0; r < nr; r++) {
          const float *src = rows[r] + shift;
#pragma clang loop unroll(full)
          for (int c = 0; c < nch; c++) {
            __m512 v;
            if (sw == 1) {
              v = load16(m0[kw * 8 + c] & rmask[r], src + 16 * c);
            } else {
              const __m512 v0 = load16(m0[kw * 8 + c] & rmask[r], src + 32 * c);
              const __m512 v1 = load16(m1[kw * 8 + c] & rmask[r], src + 32 * c + 16);
              v = _mm512_permutex2var_ps(v0, even, v1);
            }
            acc[r * nch + c] = _mm512_fmadd_ps(wv, v, acc[r * nch + c]);
          }
        }
      }
    }
#pragma clang loop unroll(full)
    for (int r = 0; r < nr; r++) {
      if (oh0 + r >= p->out_h) break;
      float *d = dst + (size_t)(oh0 + r) * p->out_w + ow0;
#pragma clang loop unroll(full)
      for (int c = 0; c < nch; c++) {
        __m512 v = acc[r * nch + c];
        v = apply_clamp(v, cl);
        store16(d + 16 * c, lanes_inside(ow0 + 16 * c, p->out_w), v);
      }
    }
  }
}

int mlk_depthwise_avx512_ok_(const mlk_conv *p) {
  return (p->stride_w == 1 || p->stride_w == 2) && p->k_w <= DW_MAX_KW;
}

// 3x3 windows, dilation 1, padding 1 at the top and left, the same stride (1 or 2) both ways: every
// depthwise layer of MobileNetV2 and most of its kin. Each tap row of a chunk of 16 outputs is
// read as whole vectors and its three taps made from them in registers: at stride 1 the chunk's
// own 16 inputs plus its neighbours' (alignr by one lane either way), at stride 2 the 32 inputs
// under the chunk split into even and odd lanes, the odd ones shifted by one lane for tap 0. One
// load per input vector and tap row, only edge vectors masked (zeros there are the right and
// bottom padding; rows outside the input are skipped). The row path (dw_rows) loads every tap with
// its own masked, mostly line-splitting load, the flat paths (below) mask every load and split
// stride-2 planes into phases first; on MobileNetV2's planes they took 1.2-2x as long (harness,
// input just written: 32x112x112 stride 1 0.151 -> 0.080 ms, 144x56x56 stride 2 0.099 -> 0.050).
// Narrow stride-1 planes (up to 16 columns) keep the flat path, which fills its vectors across
// rows; narrow stride-2 planes pair their rows (dw3_pairs_s2). Sums run in (kh, kw) order from
// the bias, as on the other paths: results are bit for bit theirs.
// 0: neither 3x3 path; 1: dw3_plane; 2: dw3_pairs_s2 (stride 2, at most 8 output columns).
AVX512 static int dw3_kind(const mlk_conv *p) {
  if (!(p->k_h == 3 && p->k_w == 3 && p->dil_h == 1 && p->dil_w == 1 && p->pad_top == 1 && p->pad_left == 1 &&
        p->stride_h == p->stride_w))
    return 0;
  if (p->stride_w == 1) return p->out_w > 16;
  if (p->stride_w != 2) return 0;
  return p->out_w > 8 ? 1 : (p->in_w <= 16 ? 2 : 0);
}

AVX512 static inline __attribute__((always_inline)) void dw3_rows(const int nch, const int nr, const int s,
    const mlk_conv *p, const float *plane, const float *k, float b, float *dst, int c0, mlk_epilogue act) {
  const vclamp cl = clamp_of(act);
  const int W = p->in_w, H = p->in_h;
  const __m512 vb = _mm512_set1_ps(b);
  const __m512 w[9] = {_mm512_set1_ps(k[0]), _mm512_set1_ps(k[1]), _mm512_set1_ps(k[2]), _mm512_set1_ps(k[3]),
                       _mm512_set1_ps(k[4]), _mm512_set1_ps(k[5]), _mm512_set1_ps(k[6]), _mm512_set1_ps(k[7]),
                       _mm512_set1_ps(k[8])};
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512i back = _mm512_setr_epi32(15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
  // The chunk group's input columns start at x0; masks of its input vectors (zeros past the row's
  // end: the right padding), of the vector after them (stride 1: the last chunk's right
  // neighbour) and of its output chunks.
  const long x0 = (long)c0 * 16 * s;
  __mmask16 lm[2 * 8];
  for (int v = 0; v < s * nch; v++) lm[v] = lanes_inside(x0 + 16L * v, W);
  const __mmask16 nextm = s == 1 ? lanes_inside(x0 + 16L * nch, W) : 0;
  __mmask16 sm[8];
  for (int c = 0; c < nch; c++) sm[c] = lanes_inside(16L * (c0 + c), p->out_w);
  for (int oh0 = 0; oh0 < p->out_h; oh0 += nr) {
    __m512 acc[8];
#pragma clang loop unroll(full)
    for (int i = 0; i < nch * nr; i++) acc[i] = vb;
#pragma clang loop unroll(full)
    for (int r = 0; r < nr; r++) {
#pragma clang loop unroll(full)
      for (int kh = 0; kh < 3; kh++) {
        const int ih = (oh0 + r) * s - 1 + kh;
        if (ih < 0 || ih >= H || oh0 + r >= p->out_h) continue;
        const float *row = plane + (size_t)ih * W + x0;
        if (s == 1) {
          __m512 prev = c0 > 0 ? _mm512_loadu_ps(row - 16) : _mm512_setzero_ps();
          __m512 cur = load16(lm[0], row);
#pragma clang loop unroll(full)
          for (int c = 0; c < nch; c++) {
            const __m512 next = c + 1 < nch ? load16(lm[c + 1], row + 16 * (c + 1)) : load16(nextm, row + 16 * nch);
            const __m512 left = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(cur), _mm512_castps_si512(prev), 15));
            const __m512 right = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(next), _mm512_castps_si512(cur), 1));
            __m512 a = _mm512_fmadd_ps(w[kh * 3], left, acc[r * nch + c]);
            a = _mm512_fmadd_ps(w[kh * 3 + 1], cur, a);
            acc[r * nch + c] = _mm512_fmadd_ps(w[kh * 3 + 2], right, a);
            prev = cur;
            cur = next;
          }
        } else {
          __m512 prev = c0 > 0 ? _mm512_set1_ps(row[-1]) : _mm512_setzero_ps();
#pragma clang loop unroll(full)
          for (int c = 0; c < nch; c++) {
            const __m512 a0 = load16(lm[2 * c], row + 32 * c), a1 = load16(lm[2 * c + 1], row + 32 * c + 16);
            const __m512 e = _mm512_permutex2var_ps(a0, even, a1), o = _mm512_permutex2var_ps(a0, odd, a1);
            const __m512 left = _mm512_permutex2var_ps(prev, back, o);
            __m512 a = _mm512_fmadd_ps(w[kh * 3], left, acc[r * nch + c]);
            a = _mm512_fmadd_ps(w[kh * 3 + 1], e, a);
            acc[r * nch + c] = _mm512_fmadd_ps(w[kh * 3 + 2], o, a);
            prev = o;
          }
        }
      }
    }
#pragma clang loop unroll(full)
    for (int r = 0; r < nr; r++) {
      if (oh0 + r >= p->out_h) break;
      float *d = dst + (size_t)(oh0 + r) * p->out_w + 16L * c0;
#pragma clang loop unroll(full)
      for (int c = 0; c < nch; c++) store16(d + 16 * c, sm[c], apply_clamp(acc[r * nch + c], cl));
    }
  }
}

// Stride 2 on narrow planes (out_w <= 8: inputs up to 16 columns): two output rows per vector,
// row oh in lanes 0-7 and row oh + 1 in lanes 8-15. A tap row loads input row 2 oh - 1 + kh and
// the one two below it, and one two-source permute per tap column picks both rows' inputs
// (column 2 ow - 1 + kw; lanes reading column -1 zeroed, columns past the row read the load's
// zero lanes). Nothing is staged in memory: the phase split the flat path does first (masked
// stores that the loads after them then wait on) took half of its time on 14x14 planes (harness,
// MobileNetV2's 576 channels 14x14 -> 7x7: 0.034 -> 0.018 ms).
AVX512 static void dw3_pairs_s2(const mlk_conv *p, const float *plane, const float *k, float b, float *dst,
                                mlk_epilogue act) {
  const vclamp cl = clamp_of(act);
  const int W = p->in_w, H = p->in_h, OW = p->out_w, OH = p->out_h;
  const __mmask16 lm = lanes_inside(0, W);
  __m512i idx[3];
  for (int kw = 0; kw < 3; kw++) {
    int v[16];
    for (int l = 0; l < 16; l++) {
      const int col = 2 * (l & 7) - 1 + kw;
      v[l] = (l >= 8 ? 16 : 0) + (col < 0 ? 0 : col);
    }
    idx[kw] = _mm512_loadu_si512(v);
  }
  const __mmask16 z0 = 0xFEFE;   // tap column 0 of output column 0 reads the left padding
  // Both rows' outputs side by side (row oh + 1 starts at lane OW), for one store of 2 OW lanes.
  int pk[16];
  for (int l = 0; l < 16; l++) pk[l] = l < OW ? l : (l - OW < 8 ? l - OW + 8 : 15);
  const __m512i pack = _mm512_loadu_si512(pk);
  __m512 w[9];
  for (int t = 0; t < 9; t++) w[t] = _mm512_set1_ps(k[t]);
  for (int oh = 0; oh < OH; oh += 2) {
    __m512 acc = _mm512_set1_ps(b);
    for (int kh = 0; kh < 3; kh++) {
      const int ra = 2 * oh - 1 + kh, rb = ra + 2;
      const __m512 a = ra >= 0 && ra < H ? _mm512_maskz_loadu_ps(lm, plane + (size_t)ra * W) : _mm512_setzero_ps();
      const __m512 c = rb < H && oh + 1 < OH ? _mm512_maskz_loadu_ps(lm, plane + (size_t)rb * W) : _mm512_setzero_ps();
      acc = _mm512_fmadd_ps(w[kh * 3], _mm512_maskz_permutex2var_ps(z0, a, idx[0], c), acc);
      acc = _mm512_fmadd_ps(w[kh * 3 + 1], _mm512_permutex2var_ps(a, idx[1], c), acc);
      acc = _mm512_fmadd_ps(w[kh * 3 + 2], _mm512_permutex2var_ps(a, idx[2], c), acc);
    }
    const int rows = oh + 1 < OH ? 2 : 1;
    _mm512_mask_storeu_ps(dst + (size_t)oh * OW, lanes_inside(0, rows * OW), _mm512_permutexvar_ps(pack, apply_clamp(acc, cl)));
  }
}

// One plane, in groups of up to 8 chunks of 16 outputs per row (a group's first chunk takes its
// left neighbour from the group before); two rows at a time where a row is a single chunk.
AVX512 static void dw3_plane(const mlk_conv *p, const float *plane, const float *k, float b, float *dst, mlk_epilogue act) {
  const int nchunks = (p->out_w + 15) / 16;
  for (int c0 = 0; c0 < nchunks; c0 += 8) {
    const int left = nchunks - c0, nch = left >= 8 ? 8 : left;
#define DW3_CASE(N) \
    case N: \
      if (p->stride_w == 1) dw3_rows(N, N >= 2 ? 1 : 2, 1, p, plane, k, b, dst, c0, act); \
      else dw3_rows(N, N >= 2 ? 1 : 2, 2, p, plane, k, b, dst, c0, act); \
      break;
    switch (nch) {
      DW3_CASE(1) DW3_CASE(2) DW3_CASE(3) DW3_CASE(4) DW3_CASE(5) DW3_CASE(6) DW3_CASE(7) DW3_CASE(8)
      default: break;
    }
#undef DW3_CASE
  }
}

// Small stride-1 planes whose output is as wide as the input ("same" padding), read as one flat
// row: output i = oh * W + ow reads tap (kh, kw) at flat input index i + (kh*dil - pad_top) * W
// + kw*dil - pad_left, the same offset for every output. Lanes whose tap falls outside the plane
// or wraps into a neighbouring row are masked off; the masks depend only on the geometry and are
// computed once per call. 16 outputs per vector whatever the width: a 7x7 plane takes 4 vectors
// per tap instead of 7 rows of 7 lanes. Each output is the bias plus its taps in (kh, kw) order,
// as on the row path.
//
// Whether a geometry takes the flat path; if so, fills `f` (once per call, shared by all tasks).
// Stride 2 with "same" output sizes (out = ceil(in / 2)), as every stride-2 depthwise layer of
// MobileNetV2: the input plane is first split into four phase planes of out_h x out_w, phase
// (py, qx) holding input (2r + py, 2c + qx). Tap (kh, kw) at output (oh, ow) reads input row
// 2oh + kh - pad_top, that is phase py = (kh - pad_top) & 1 at row oh + dy, dy = (kh - pad_top - py) / 2,
// and likewise for columns: one phase plane at a fixed flat offset, as in the stride-1 case.
// Lanes whose phase row or column does not exist (input edges) are masked off. Input planes up to
// 8192 floats (32 KB): on MobileNetV2's 112x112 planes the split costs more than it saves (0.25 ->
// 0.31 ms), on 56x56 and smaller it saves a third to a half (14x14x576: 0.089 -> 0.049 ms).
AVX512 static void or_row_range(uint16_t *m, long start, long len) {
  for (long v = start / 16; v * 16 < start + len; v++) m[v] |= lanes_inside(v * 16 - start, len);
}

AVX512 static int flat2_setup(const mlk_conv *p, mlk_dw_flat *f) {
  if (!(p->stride_h == 2 && p->stride_w == 2 && p->dil_h == 1 && p->dil_w == 1 && p->out_w == (p->in_w + 1) / 2 &&
        p->out_h == (p->in_h + 1) / 2 && p->in_h * p->in_w <= 8192 && p->k_h * p->k_w <= MLK_DW_FLAT_TAPS))
    return 0;
  const int PW = p->out_w, PH = p->out_h, taps = p->k_h * p->k_w;
  memset(f->masks, 0, sizeof f->masks);
  for (int t = 0; t < taps; t++) {
    const int ey = t / p->k_w - p->pad_top, ex = t % p->k_w - p->pad_left;
    const int py = ey & 1, qx = ex & 1, dy = (ey - py) / 2, dx = (ex - qx) / 2;
    f->offs[t] = (long)(py * 2 + qx) * PH * PW + (long)dy * PW + dx;
    const int rows = (p->in_h - py + 1) / 2, cols = (p->in_w - qx + 1) / 2;   // that phase's extent
    const int oh_lo = dy < 0 ? -dy : 0, oh_hi = rows - dy < PH ? rows - dy : PH;
    const int ow_lo = dx < 0 ? -dx : 0, ow_hi = cols - dx < PW ? cols - dx : PW;
    if (ow_hi <= ow_lo) continue;
    for (int oh = oh_lo; oh < oh_hi; oh++) or_row_range(f->masks + t * MLK_DW_FLAT_VECTORS, (long)oh * PW + ow_lo, ow_hi - ow_lo);
  }
  f->phased = 1;
  return 1;
}

// The four phase planes of one input plane, each out_h x out_w (rows or columns past the input's
// phase are left unset: the masks never read them).
AVX512 static void split_phases(const mlk_conv *p, const float *plane, float *ph) {
  const int PW = p->out_w, PH = p->out_h, W = p->in_w;
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  // Every row ends in the same r columns past its last whole 32: their masks once per plane.
  const int full = W / 32 * 32, r = W - full;
  const __mmask16 ma = lanes_inside(0, r), mb = lanes_inside(16, r), me = lanes_inside(0, (r + 1) / 2), mo = lanes_inside(0, r / 2);
  for (int ih = 0; ih < p->in_h; ih++) {
    const float *src = plane + (size_t)ih * W;
    float *de = ph + ((size_t)((ih & 1) * 2) * PH + (ih >> 1)) * PW, *dodd = de + (size_t)PH * PW;
    for (int c = 0; c < full; c += 32) {
      const __m512 a = _mm512_loadu_ps(src + c), b = _mm512_loadu_ps(src + c + 16);
      _mm512_storeu_ps(de + c / 2, _mm512_permutex2var_ps(a, even, b));
      _mm512_storeu_ps(dodd + c / 2, _mm512_permutex2var_ps(a, odd, b));
    }
    if (r > 0) {
      const __m512 a = _mm512_maskz_loadu_ps(ma, src + full), b = _mm512_maskz_loadu_ps(mb, src + full + 16);
      _mm512_mask_storeu_ps(de + full / 2, me, _mm512_permutex2var_ps(a, even, b));
      _mm512_mask_storeu_ps(dodd + full / 2, mo, _mm512_permutex2var_ps(a, odd, b));
    }
  }
}

AVX512 int mlk_depthwise_flat_setup_(const mlk_conv *p, mlk_dw_flat *f) {
  f->phased = 0;
  if (dw3_kind(p)) return 0;   // takes dw3_plane or dw3_pairs_s2 instead
  if (flat2_setup(p, f)) return 1;
  if (!(p->stride_h == 1 && p->stride_w == 1 && p->out_w == p->in_w && p->out_h * p->out_w <= 16 * MLK_DW_FLAT_VECTORS &&
        p->k_h * p->k_w <= MLK_DW_FLAT_TAPS))
    return 0;
  const int W = p->in_w, taps = p->k_h * p->k_w, nv = (p->out_h * p->out_w + 15) / 16;
  memset(f->masks, 0, sizeof f->masks);   // vectors past the plane (up to a group of 4) read nothing
  for (int t = 0; t < taps; t++) {
    const int dy = t / p->k_w * p->dil_h - p->pad_top, dx = t % p->k_w * p->dil_w - p->pad_left;
    f->offs[t] = (long)dy * W + dx;
    uint16_t *m = f->masks + t * MLK_DW_FLAT_VECTORS;
    // Rows whose tap row lies inside the input are one range of flat indices...
    const int oh_lo = dy < 0 ? -dy : 0, oh_hi = p->in_h - dy < p->out_h ? p->in_h - dy : p->out_h;
    if (oh_hi <= oh_lo) continue;
    for (int v = 0; v < nv; v++) m[v] = lanes_inside((long)v * 16 - (long)oh_lo * W, (long)(oh_hi - oh_lo) * W);
    // ...less, in each of those rows, the |dx| columns whose tap column falls outside.
    const int ow_lo = dx < 0 ? 0 : (W - dx > 0 ? W - dx : 0), ow_hi = dx < 0 ? (-dx < W ? -dx : W) : W;
    for (int oh = oh_lo; oh < oh_hi; oh++)
      for (int ow = ow_lo; ow < ow_hi; ow++) {
        const int i = oh * W + ow;
        m[i / 16] &= (uint16_t)~(1u << (i % 16));
      }
  }
  return 1;
}

// `nc` neighbouring channels at once (1 or 2; planes in_hw apart, outputs out_hw apart), sharing
// the masks. Two give twice the independent sums in flight: on small planes one channel's few
// chains of dependent FMAs (7x7: 4 vectors, 9 taps each) left the core waiting (harness,
// MobileNetV2's 960 channels of 7x7 0.029 -> 0.021 ms, 384 of 14x14 0.035 -> 0.029, 576 of 14x14
// 0.050 -> 0.044).
AVX512 static inline __attribute__((always_inline)) void dw_flat_planes(const int nc, const mlk_conv *p, const float *plane,
                                                                        size_t in_hw, const float *k, const float *b,
                                                                        float *dst, size_t out_hw, int nv,
                                                                        const uint16_t *masks, const long *offs,
                                                                        mlk_epilogue act) {
  const int taps = p->k_h * p->k_w, hw = p->out_h * p->out_w;
  const vclamp cl = clamp_of(act);
  const long reach = offs[taps - 1];   // the last tap reads furthest ahead
  for (int v0 = 0; v0 < nv; v0 += DW_FLAT_GROUP) {
    __m512 acc[2][DW_FLAT_GROUP];
#pragma clang loop unroll(full)
    for (int j = 0; j < DW_FLAT_GROUP; j++) {
#pragma clang loop unroll(full)
      for (int c = 0; c < nc; c++) acc[c][j] = _mm512_set1_ps(b[c]);
      // The lines the group DW_FLAT_AHEAD vectors on reads first (past the plane's end: the
      // next channel's), fetched here: the masked loads below get no help from the hardware
      // prefetcher when they miss.
      _mm_prefetch((const char *)(plane + (nc - 1) * in_hw + reach + 16 * (v0 + DW_FLAT_AHEAD + j)), _MM_HINT_T0);
    }
    for (int t = 0; t < taps; t++) {
      const float *src = plane + offs[t] + 16 * v0;
      const uint16_t *m = masks + t * MLK_DW_FLAT_VECTORS + v0;
      __m512 wv[2];
#pragma clang loop unroll(full)
      for (int c = 0; c < nc; c++) wv[c] = _mm512_set1_ps(k[c * taps + t]);
      // Vectors past nv have all-zero masks: no memory is read. The planes are L1/L2-resident, where
      // masked loads cost what plain ones do (a test to pick one measured 10-20% slower).
#pragma clang loop unroll(full)
      for (int j = 0; j < DW_FLAT_GROUP; j++)
#pragma clang loop unroll(full)
        for (int c = 0; c < nc; c++)
          acc[c][j] = _mm512_fmadd_ps(wv[c], _mm512_maskz_loadu_ps(m[j], src + c * in_hw + 16 * j), acc[c][j]);
    }
#pragma clang loop unroll(full)
    for (int j = 0; j < DW_FLAT_GROUP; j++)
      if (v0 + j < nv) {
        const __mmask16 sm = lanes_inside(16 * (v0 + j), hw);
#pragma clang loop unroll(full)
        for (int c = 0; c < nc; c++) store16(dst + c * out_hw + 16 * (v0 + j), sm, apply_clamp(acc[c][j], cl));
      }
  }
}

// Output channels [o0, o1) of image n. The load masks depend only on the geometry, so a plane
// no wider than 128 outputs (one chunk group) computes them once for all its channels.
AVX512 void mlk_depthwise_planes_avx512_(const mlk_conv *p, const float *x, const float *w, const float *bias,
                                         float *y, int n, int o0, int o1, const mlk_dw_flat *flat, mlk_epilogue act) {
  const int sw = p->stride_w, nchunks = (p->out_w + 15) / 16, mult = p->out_c / p->in_c;
  const size_t in_hw = (size_t)p->in_h * p->in_w, out_hw = (size_t)p->out_h * p->out_w;
  const int k3 = sw == 2 && p->k_w == 3 && p->pad_left == 1 && p->dil_w == 1;
  __mmask16 m0[DW_MAX_KW * 8], m1[DW_MAX_KW * 8];
  int masks_for = -1;   // the ow0 the masks hold
  const int three = dw3_kind(p);
  if (three) {
    for (int o = o0; o < o1; o++) {
      const float *plane = x + ((size_t)n * p->in_c + o / mult) * in_hw;
      float *dst = y + ((size_t)n * p->out_c + o) * out_hw;
      if (three == 1) dw3_plane(p, plane, w + (size_t)o * 9, bias ? bias[o] : 0.0f, dst, act);
      else dw3_pairs_s2(p, plane, w + (size_t)o * 9, bias ? bias[o] : 0.0f, dst, act);
    }
    return;
  }
  if (flat) {
    const int nv = (int)((out_hw + 15) / 16);
    float phases[4 * 16 * MLK_DW_FLAT_VECTORS];   // 64 KB: four phase planes of at most 4096 outputs
    int o = o0;
    if (!flat->phased && mult == 1)
      for (; o + 1 < o1; o += 2) {
        const float bb[2] = {bias ? bias[o] : 0.0f, bias ? bias[o + 1] : 0.0f};
        dw_flat_planes(2, p, x + ((size_t)n * p->in_c + o) * in_hw, in_hw, w + (size_t)o * p->k_h * p->k_w, bb,
                       y + ((size_t)n * p->out_c + o) * out_hw, out_hw, nv, flat->masks, flat->offs, act);
      }
    for (; o < o1; o++) {
      const float *plane = x + ((size_t)n * p->in_c + o / mult) * in_hw;
      if (flat->phased) {
        split_phases(p, plane, phases);
        plane = phases;
      }
      const float bo = bias ? bias[o] : 0.0f;
      dw_flat_planes(1, p, plane, in_hw, w + (size_t)o * p->k_h * p->k_w, &bo, y + ((size_t)n * p->out_c + o) * out_hw, out_hw,
                     nv, flat->masks, flat->offs, act);
    }
    return;
  }
  for (int o = o0; o < o1; o++) {
    const float *plane = x + ((size_t)n * p->in_c + o / mult) * in_hw, *k = w + (size_t)o * p->k_h * p->k_w;
    const float b = bias ? bias[o] : 0.0f;
    float *dst = y + ((size_t)n * p->out_c + o) * out_hw;
    for (int ow0 = 0; ow0 < p->out_w; ow0 += 16 * 8) {
      const int left = nchunks - ow0 / 16, nch = left >= 8 ? 8 : left;
      if (masks_for != ow0) { window_masks(p, ow0, nch, m0, m1); masks_for = ow0; }
#define DW_CASE(N) \
      case N: \
        if (sw == 1) dw_rows(N, 8 / N, 1, 0, p, plane, k, b, dst, ow0, m0, m1, act); \
        else if (k3) dw_rows(N, 8 / N, 2, 1, p, plane, k, b, dst, ow0, m0, m1, act); \
        else dw_rows(N, 8 / N, 2, 0, p, plane, k, b, dst, ow0, m0, m1, act); \
        break;
      switch (nch) {
        DW_CASE(1) DW_CASE(2) DW_CASE(3) DW_CASE(4) DW_CASE(5) DW_CASE(6) DW_CASE(7) DW_CASE(8)
        default: break;
      }
#undef DW_CASE
    }
  }
}

// Max pooling over one NCHW plane, shaped like the depthwise kernel: up to 8 chunks of 16
// outputs in registers per row, loads masked to the input row with -inf in the masked-off
// lanes. A NaN in any tap makes the output NaN (as the scalar kernel does). Callers ensure
// every window holds at least one input (pads smaller than the kernel).
AVX512 static inline __attribute__((always_inline)) void max_rows(const int nch, const int sw, const mlk_conv *p,
                                                                  const float *plane, float *dst, int ow0,
                                                                  const __mmask16 *m0, const __mmask16 *m1) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
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
          __m512 v;
          if (sw == 1) {
            v = load_or(ninf, m0[kw * 8 + c], src + 16 * c);
          } else {
            const __m512 v0 = load_or(ninf, m0[kw * 8 + c], src + 32 * c);
            const __m512 v1 = load_or(ninf, m1[kw * 8 + c], src + 32 * c + 16);
            v = _mm512_permutex2var_ps(v0, even, v1);
          }
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

int mlk_maxpool_avx512_ok_(const mlk_conv *p) {
  return mlk_use_avx512_() && (p->stride_w == 1 || p->stride_w == 2) && p->k_w <= DW_MAX_KW && p->pad_top < p->k_h &&
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

AVX512 void mlk_maxpool_plane_avx512_(const mlk_conv *p, const float *plane, float *dst) {
  if (p->k_h == 3 && p->k_w == 3 && p->stride_h == 2 && p->stride_w == 2 && p->pad_left == 1 && p->pad_top <= 1) {
    max3s2_plane(p, plane, dst);
    return;
  }
  const int sw = p->stride_w, nchunks = (p->out_w + 15) / 16;
  __mmask16 m0[DW_MAX_KW * 8], m1[DW_MAX_KW * 8];
  for (int ow0 = 0; ow0 < p->out_w; ow0 += 16 * 8) {
    const int left = nchunks - ow0 / 16, nch = left >= 8 ? 8 : left;
    window_masks(p, ow0, nch, m0, m1);
#define MAX_CASE(N) \
    case N: sw == 1 ? max_rows(N, 1, p, plane, dst, ow0, m0, m1) : max_rows(N, 2, p, plane, dst, ow0, m0, m1); break;
    switch (nch) {
      MAX_CASE(1) MAX_CASE(2) MAX_CASE(3) MAX_CASE(4) MAX_CASE(5) MAX_CASE(6) MAX_CASE(7) MAX_CASE(8)
      default: break;
    }
#undef MAX_CASE
  }
}

// Up to NP output pixels of row oh (columns ow, ow + 1, ...; `np` of them) for the channels [c0,
// c0 + 16 nv): NP x nv accumulators, each tap's weight vectors loaded once for all the pixels.
// `edge`: taps are checked against the input's columns (pixels near the left or right border).
AVX512 static inline __attribute__((always_inline)) void dwh_pixels(const int NP, const int nv, const int edge,
    const mlk_conv *p, const float *xn, const float *w, int kh0, int kh1, int oh, int ow, int np, int c0,
    __mmask16 m0, __mmask16 m1, __m512 b0, __m512 b1, float *yn, vclamp cl) {
  const int C = p->out_c;
  __m512 acc[4][2];
#pragma clang loop unroll(full)
  for (int i = 0; i < NP; i++) { acc[i][0] = b0; acc[i][1] = b1; }
  for (int kh = kh0; kh < kh1; kh++) {
    const float *row = xn + (size_t)(oh * p->stride_h - p->pad_top + kh * p->dil_h) * p->in_w * C + c0;
    for (int kw = 0; kw < p->k_w; kw++) {
      const float *k = w + ((size_t)kh * p->k_w + kw) * C + c0;
      const __m512 w0 = load16(m0, k), w1 = nv == 2 ? load16(m1, k + 16) : _mm512_setzero_ps();
#pragma clang loop unroll(full)
      for (int i = 0; i < NP; i++) {
        const int iw = (ow + i) * p->stride_w - p->pad_left + kw * p->dil_w;
        if (edge && (i >= np || iw < 0 || iw >= p->in_w)) continue;
        const float *src = row + (size_t)iw * C;
        acc[i][0] = _mm512_fmadd_ps(load16(m0, src), w0, acc[i][0]);
        if (nv == 2) acc[i][1] = _mm512_fmadd_ps(load16(m1, src + 16), w1, acc[i][1]);
      }
    }
  }
#pragma clang loop unroll(full)
  for (int i = 0; i < NP; i++) {
    if (edge && i >= np) break;
    float *dst = yn + ((size_t)oh * p->out_w + ow + i) * C + c0;
    store16(dst, m0, apply_clamp(acc[i][0], cl));
    if (nv == 2) store16(dst + 16, m1, apply_clamp(acc[i][1], cl));
  }
}

// Depthwise over NHWC data (multiplier 1): channels as vectors, 32 at a time, and four output
// pixels at a time, so that each tap's weights are loaded once for four pixels and eight
// independent sums are in flight. One pixel's 64 channels at a time, with 9 dependent FMAs per
// vector, had left the core waiting on them (harness, the Keras MobileNetV2's layers: 32 x
// 112x112 0.523 -> 0.196 ms, 144 x 56x56 0.382 -> 0.207, 96 x 112x112 stride 2 0.275 -> 0.160,
// 960 x 7x7 0.032 -> 0.022; six or eight pixels at a time were slower). Pixels whose window
// reaches past the row's ends check each tap. Each output is the bias plus its taps in (kh, kw)
// order, as in the scalar kernel.
AVX512 void mlk_depthwise_nhwc_row_avx512_(const mlk_conv *p, const float *xn, const float *w, const float *bias, float *yn,
                                           int oh, mlk_epilogue act) {
  const int C = p->out_c;
  const vclamp cl = clamp_of(act);
  int kh0 = 0, kh1 = p->k_h;
  while (kh0 < kh1 && oh * p->stride_h - p->pad_top + kh0 * p->dil_h < 0) kh0++;
  while (kh1 > kh0 && oh * p->stride_h - p->pad_top + (kh1 - 1) * p->dil_h >= p->in_h) kh1--;
  // Output columns whose taps all lie inside the row: [lo, hi).
  int lo = 0, hi = p->out_w;
  while (lo < hi && lo * p->stride_w - p->pad_left < 0) lo++;
  while (hi > lo && (hi - 1) * p->stride_w - p->pad_left + (p->k_w - 1) * p->dil_w >= p->in_w) hi--;
  for (int c0 = 0; c0 < C; c0 += 32) {
    const __mmask16 m0 = lanes_inside(c0, C), m1 = lanes_inside(c0 + 16, C);
    const __m512 b0 = bias ? load16(m0, bias + c0) : _mm512_setzero_ps();
    const __m512 b1 = bias && m1 ? load16(m1, bias + c0 + 16) : _mm512_setzero_ps();
    for (int ow = 0; ow < p->out_w;) {
      const int inner = ow >= lo && ow + 4 <= hi;
      const int np = inner ? 4 : (ow < lo ? (lo - ow < 4 ? lo - ow : 4) : (p->out_w - ow < 4 ? p->out_w - ow : 4));
      if (m1) {
        if (inner) dwh_pixels(4, 2, 0, p, xn, w, kh0, kh1, oh, ow, 4, c0, m0, m1, b0, b1, yn, cl);
        else dwh_pixels(4, 2, 1, p, xn, w, kh0, kh1, oh, ow, np, c0, m0, m1, b0, b1, yn, cl);
      } else {
        if (inner) dwh_pixels(4, 1, 0, p, xn, w, kh0, kh1, oh, ow, 4, c0, m0, m1, b0, b1, yn, cl);
        else dwh_pixels(4, 1, 1, p, xn, w, kh0, kh1, oh, ow, np, c0, m0, m1, b0, b1, yn, cl);
      }
      ow += np;
    }
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

// Every other float: two 16-lane loads, one permute keeping the even lanes. The tail loads are
// masked to the floats that exist, so nothing past src[2n - 2] is read.
AVX512 static void even_lanes_avx512(float *dst, const float *src, int n) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    // src[2i + 31] is odd and, in the last full block, may lie past the end: masked off there.
    const __m512 a = _mm512_loadu_ps(src + 2 * i);
    const __m512 b = i + 16 < n ? _mm512_loadu_ps(src + 2 * i + 16) : _mm512_maskz_loadu_ps(0x7FFF, src + 2 * i + 16);
    _mm512_storeu_ps(dst + i, _mm512_permutex2var_ps(a, even, b));
  }
  if (i < n) {
    const int left = 2 * (n - i) - 1;   // floats src[2i .. 2n - 2]
    const __mmask16 ma = (__mmask16)(left >= 16 ? 0xFFFF : (1u << left) - 1);
    const __mmask16 mb = (__mmask16)(left > 16 ? (1u << (left - 16)) - 1 : 0);
    const __m512 a = _mm512_maskz_loadu_ps(ma, src + 2 * i), b = _mm512_maskz_loadu_ps(mb, src + 2 * i + 16);
    _mm512_mask_storeu_ps(dst + i, (__mmask16)((1u << (n - i)) - 1), _mm512_permutex2var_ps(a, even, b));
  }
}

// Row of im2col for a 1x1 convolution of stride 2 (no padding): output columns [col, col + width)
// of a plane with out_w columns, i.e. the even columns of the plane's even rows, into row. The
// same input lines of the plane `ahead` (a later channel; NULL for none) are requested meanwhile:
// the lines read lie rows and planes apart, beyond what the hardware prefetcher follows.
AVX512 void mlk_subsample2_row_avx512_(float *row, const float *plane, int in_w, int out_w, int col, int width,
                                       const float *ahead) {
  for (int j = 0; j < width;) {
    const int o = col + j, oh = o / out_w, ow0 = o % out_w;
    const int run = out_w - ow0 < width - j ? out_w - ow0 : width - j;
    const long at = (long)2 * oh * in_w + 2 * ow0;
    if (ahead)
      for (int q = 0; q < 2 * run; q += 16) _mm_prefetch((const char *)(ahead + at + q), _MM_HINT_T0);
    even_lanes_avx512(row + j, plane + at, run);
    j += run;
  }
}

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

// y[j] = alpha * (w[j] . x) + beta * y[j] for rows j < n of w (k floats each, ldw apart); y is not
// read when beta is 0. Eight rows at a time, one accumulator each, x loaded once per 16 k for all
// eight; each row's sum runs lane-wise along k and then across lanes, the same way whatever the
// caller's split of the rows.
AVX512 void mlk_gemv_rows_avx512_(int n, int k, const float *w, long ldw, const float *x, float alpha, float beta, float *y) {
  const int k16 = k / 16 * 16;
  const __mmask16 tail = (__mmask16)((1u << (k - k16)) - 1);
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    __m512 acc[8];
    for (int r = 0; r < 8; r++) acc[r] = _mm512_setzero_ps();
    for (int q = 0; q < k16; q += 16) {
      const __m512 xv = _mm512_loadu_ps(x + q);
      for (int r = 0; r < 8; r++) acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(w + (size_t)(j + r) * ldw + q), xv, acc[r]);
    }
    if (tail) {
      const __m512 xv = _mm512_maskz_loadu_ps(tail, x + k16);
      for (int r = 0; r < 8; r++)
        acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w + (size_t)(j + r) * ldw + k16), xv, acc[r]);
    }
    for (int r = 0; r < 8; r++) {
      const float d = alpha * _mm512_reduce_add_ps(acc[r]);
      y[j + r] = beta == 0.0f ? d : d + beta * y[j + r];
    }
  }
  for (; j < n; j++) {
    __m512 acc = _mm512_setzero_ps();
    for (int q = 0; q < k16; q += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(w + (size_t)j * ldw + q), _mm512_loadu_ps(x + q), acc);
    if (tail) acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w + (size_t)j * ldw + k16), _mm512_maskz_loadu_ps(tail, x + k16), acc);
    const float d = alpha * _mm512_reduce_add_ps(acc);
    y[j] = beta == 0.0f ? d : d + beta * y[j];
  }
}

// Winograd F(2x2, 3x3) (see conv_wino in kernels.c), on vectors of 16 channels. With
// G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1], B' = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] and
// A' = [1 1 1 0; 0 1 -1 -1]: a filter g becomes U = G g G', a 4x4 input tile d becomes
// V = B' d B, and the 2x2 outputs are A' M A with M the elementwise products summed over input
// channels.

// One filter's rows (or columns) g0, g1, g2 -> G's four.
AVX512 static inline __attribute__((always_inline)) void wino_g(__m512 g0, __m512 g1, __m512 g2, __m512 *t) {
  const __m512 half = _mm512_set1_ps(0.5f), e = _mm512_mul_ps(_mm512_add_ps(g0, g2), half), o = _mm512_mul_ps(g1, half);
  t[0] = g0;
  t[1] = _mm512_add_ps(e, o);
  t[2] = _mm512_sub_ps(e, o);
  t[3] = g2;
}

// d0..d3 -> B' d.
AVX512 static inline __attribute__((always_inline)) void wino_b(__m512 d0, __m512 d1, __m512 d2, __m512 d3, __m512 *t) {
  t[0] = _mm512_sub_ps(d0, d2);
  t[1] = _mm512_add_ps(d1, d2);
  t[2] = _mm512_sub_ps(d2, d1);
  t[3] = _mm512_sub_ps(d1, d3);
}

// Panels [P][in_c * 9][32] (k = (c * 3 + kh) * 3 + kw) -> u [P][16][in_c][32], entry (i, j) of
// U = i * 4 + j; panels [p0, p1).
AVX512 void mlk_wino_weights_avx512_(int in_c, int p0, int p1, const float *panels, float *u) {
  for (int p = p0; p < p1; p++)
    for (int c = 0; c < in_c; c++)
      for (int h = 0; h < 32; h += 16) {
        const float *g = panels + ((size_t)p * in_c * 9 + (size_t)c * 9) * 32 + h;
        __m512 r[3][4], t[4];
        for (int kh = 0; kh < 3; kh++)   // G along each filter row (over kw)
          wino_g(_mm512_loadu_ps(g + (kh * 3) * 32), _mm512_loadu_ps(g + (kh * 3 + 1) * 32),
                 _mm512_loadu_ps(g + (kh * 3 + 2) * 32), r[kh]);
        for (int j = 0; j < 4; j++) {    // then along each column (over kh)
          wino_g(r[0][j], r[1][j], r[2][j], t);
          for (int i = 0; i < 4; i++) _mm512_storeu_ps(u + (((size_t)p * 16 + i * 4 + j) * in_c + c) * 32 + h, t[i]);
        }
      }
}

// Tiles of tile rows [th0, th0 + nth) (tw tiles a row) of the channel-blocked input x
// ([c16][h][w][16], padding 1 read as zeros) -> v [16][c16][nth * tw][16].
AVX512 void mlk_wino_input_avx512_(const float *x, int c16, int h, int w, int th0, int nth, int tw, float *v) {
  const int nt = nth * tw;
  for (int cb = 0; cb < c16; cb++) {
    const float *xc = x + (size_t)cb * h * w * 16;
    for (int ti = 0; ti < nth; ti++)
      for (int tj = 0; tj < tw; tj++) {
        const int y0 = 2 * (th0 + ti) - 1, x0 = 2 * tj - 1, inside = y0 >= 0 && y0 + 3 < h && x0 >= 0 && x0 + 3 < w;
        __m512 d[4][4], r[4][4], t[4];
        for (int i = 0; i < 4; i++)
          for (int j = 0; j < 4; j++) {
            const int yy = y0 + i, xx = x0 + j;
            d[i][j] = inside || (yy >= 0 && yy < h && xx >= 0 && xx < w) ? _mm512_loadu_ps(xc + ((size_t)yy * w + xx) * 16)
                                                                           : _mm512_setzero_ps();
          }
        for (int j = 0; j < 4; j++) {   // B' down each column
          wino_b(d[0][j], d[1][j], d[2][j], d[3][j], t);
          for (int i = 0; i < 4; i++) r[i][j] = t[i];
        }
        float *vt = v + ((size_t)cb * nt + (size_t)ti * tw + tj) * 16;
        for (int i = 0; i < 4; i++) {    // then along each row
          wino_b(r[i][0], r[i][1], r[i][2], r[i][3], t);
          for (int j = 0; j < 4; j++) _mm512_storeu_ps(vt + (size_t)(i * 4 + j) * c16 * nt * 16, t[j]);
        }
      }
  }
}

// Sums m [16][nth * tw][32] of one panel (nco <= 32 output channels) -> the 2x2 outputs of each
// tile, act(A' M A * scale + bias + res), into channel-blocked y and res (the panel's first
// block; blocks hw * 16 floats apart), rows and columns past h x w dropped. `pixel_major`: into
// y as [pixel][32] instead, pixel (oy - row0) * w + ox (res then NULL).
AVX512 void mlk_wino_output_avx512_(const float *m, int nco, int th0, int nth, int tw, int h, int w, const float *scale,
                                    const float *bias, const float *res, float *y, int pixel_major, int row0,
                                    mlk_epilogue act) {
  const vclamp cl = clamp_of(act);
  const int nt = nth * tw, ps = pixel_major ? 32 : 16;
  const size_t hw = (size_t)h * w, block = pixel_major ? 16 : hw * 16;
  for (int hh = 0; hh < nco; hh += 16) {
    const __m512 s = scale ? _mm512_loadu_ps(scale + hh) : _mm512_set1_ps(1.0f);
    const __m512 b = bias ? _mm512_loadu_ps(bias + hh) : _mm512_setzero_ps();
    float *yh = y + (size_t)(hh / 16) * block;
    const float *rh = res ? res + (size_t)(hh / 16) * block : NULL;
    for (int t = 0; t < nt; t++) {
      const int oy = 2 * (th0 + t / tw), ox = 2 * (t % tw);
      __m512 r[2][4];
      for (int j = 0; j < 4; j++) {   // A' down each column
        const __m512 m0 = _mm512_loadu_ps(m + ((size_t)(0 * 4 + j) * nt + t) * 32 + hh);
        const __m512 m1 = _mm512_loadu_ps(m + ((size_t)(1 * 4 + j) * nt + t) * 32 + hh);
        const __m512 m2 = _mm512_loadu_ps(m + ((size_t)(2 * 4 + j) * nt + t) * 32 + hh);
        const __m512 m3 = _mm512_loadu_ps(m + ((size_t)(3 * 4 + j) * nt + t) * 32 + hh);
        r[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
        r[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
      }
      for (int i = 0; i < 2 && oy + i < h; i++) {   // then along each row
        const __m512 o[2] = {_mm512_add_ps(_mm512_add_ps(r[i][0], r[i][1]), r[i][2]),
                             _mm512_sub_ps(_mm512_sub_ps(r[i][1], r[i][2]), r[i][3])};
        for (int j = 0; j < 2 && ox + j < w; j++) {
          const size_t at = ((size_t)(oy + i - row0) * w + ox + j) * ps;
          __m512 v = _mm512_fmadd_ps(o[j], s, b);
          if (rh) v = _mm512_add_ps(v, _mm512_loadu_ps(rh + at));
          _mm512_storeu_ps(yh + at, apply_clamp(v, cl));
        }
      }
    }
  }
}

AVX512 void mlk_store_act_avx512_(float *dst, const float *src, const float *res, int n, mlk_epilogue act) {
  const vclamp cl = clamp_of(act);
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_loadu_ps(src + i);
    if (res) v = _mm512_add_ps(v, _mm512_loadu_ps(res + i));
    _mm512_storeu_ps(dst + i, apply_clamp(v, cl));
  }
  if (i < n) {
    const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    __m512 v = _mm512_maskz_loadu_ps(m, src + i);
    if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res + i));
    _mm512_mask_storeu_ps(dst + i, m, apply_clamp(v, cl));
  }
}

void mlk_even_lanes_(float *dst, const float *src, int n) {
  if (mlk_use_avx512_()) {
    even_lanes_avx512(dst, src, n);
    return;
  }
  for (int i = 0; i < n; i++) dst[i] = src[2 * i];
}

int mlk_avx512_available(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("fma");
}

static int avx512_choice = -1;   // -1: not decided yet

void mlk_prefer_avx512(int on) { avx512_choice = on && mlk_avx512_available(); }

int mlk_use_avx512_(void) {
  if (avx512_choice < 0) {
    const char *env = getenv("MODELLENS_KERNELS");
    avx512_choice = (env && strcmp(env, "blas") == 0) ? 0 : mlk_avx512_available();
  }
  return avx512_choice;
}

#else
int mlk_avx512_available(void) { return 0; }
void mlk_prefer_avx512(int on) { (void)on; }
int mlk_use_avx512_(void) { return 0; }
int mlk_depthwise_avx512_ok_(const mlk_conv *p) { (void)p; return 0; }
int mlk_depthwise_flat_setup_(const mlk_conv *p, mlk_dw_flat *f) { (void)p; (void)f; return 0; }
int mlk_depthwise_nhwc_flat_ok_(const mlk_conv *p) { (void)p; return 0; }
int mlk_conv_nhwc_single_ok_(const mlk_conv *p) { (void)p; return 0; }
int mlk_conv1x1_nhwc_small_ok_(const mlk_conv *p) { (void)p; return 0; }
void mlk_conv1x1_nhwc_small_avx512_(const mlk_conv *p, const float *x, const float *w, const float *bias, float *y,
                                    long px0, long npx, mlk_epilogue act) {
  (void)p; (void)x; (void)w; (void)bias; (void)y; (void)px0; (void)npx; (void)act;
  abort();
}
void mlk_conv_nhwc_row_single_avx512_(const mlk_conv *p, const float *xn, const float *w, const float *bias,
                                      float *yn, int oh, mlk_epilogue act) {
  (void)p; (void)xn; (void)w; (void)bias; (void)yn; (void)oh; (void)act;
  abort();
}
void mlk_depthwise_nhwc_row_flat_avx512_(const mlk_conv *p, const float *xn, const float *w, const float *bias,
                                         float *yn, int oh, mlk_epilogue act) {
  (void)p; (void)xn; (void)w; (void)bias; (void)yn; (void)oh; (void)act;
  abort();
}
int mlk_maxpool_avx512_ok_(const mlk_conv *p) { (void)p; return 0; }
void mlk_even_lanes_(float *dst, const float *src, int n) {
  for (int i = 0; i < n; i++) dst[i] = src[2 * i];
}
void mlk_subsample2_row_avx512_(float *row, const float *plane, int in_w, int out_w, int col, int width,
                                const float *ahead) {
  (void)row; (void)plane; (void)in_w; (void)out_w; (void)col; (void)width; (void)ahead;
}
void mlk_store_act_avx512_(float *dst, const float *src, const float *res, int n, mlk_epilogue act) {
  (void)dst; (void)src; (void)res; (void)n; (void)act;
}
void mlk_cot_strip_avx512_(int n, int s, int kc, const float *x, const long *off, const float *wt, float *ct, int first,
                           const float *pf, int npf) {
  (void)n; (void)s; (void)kc; (void)x; (void)off; (void)wt; (void)ct; (void)first; (void)pf; (void)npf;
}
void mlk_interleave16_avx512_(const float *src, long lds, int nch, int n, float *dst) {
  (void)src; (void)lds; (void)nch; (void)n; (void)dst;
}
void mlk_cot_pack_avx512_(int kk, int nrows, const float *w, long ldw, float *wt) {
  (void)kk; (void)nrows; (void)w; (void)ldw; (void)wt;
}
void mlk_global_mean_avx512_(int planes, int inner, int blocked, const float *x, float *y) {
  (void)planes; (void)inner; (void)blocked; (void)x; (void)y;
  abort();
}
void mlk_gemv_rows_avx512_(int n, int k, const float *w, long ldw, const float *x, float alpha, float beta, float *y) {
  (void)n; (void)k; (void)w; (void)ldw; (void)x; (void)alpha; (void)beta; (void)y;
  abort();
}
void mlk_wino_weights_avx512_(int in_c, int p0, int p1, const float *panels, float *u) {
  (void)in_c; (void)p0; (void)p1; (void)panels; (void)u;
  abort();
}
void mlk_wino_input_avx512_(const float *x, int c16, int h, int w, int th0, int nth, int tw, float *v) {
  (void)x; (void)c16; (void)h; (void)w; (void)th0; (void)nth; (void)tw; (void)v;
  abort();
}
void mlk_wino_output_avx512_(const float *m, int nco, int th0, int nth, int tw, int h, int w, const float *scale,
                             const float *bias, const float *res, float *y, int pixel_major, int row0, mlk_epilogue act) {
  (void)m; (void)nco; (void)th0; (void)nth; (void)tw; (void)h; (void)w; (void)scale; (void)bias; (void)res; (void)y;
  (void)pixel_major; (void)row0; (void)act;
  abort();
}
void mlk_cot_store_blocked_avx512_(int hw, long ld, int nco, const float *ct, const float *scale, const float *bias,
                                   const float *res, float *y, mlk_epilogue act) {
  (void)hw; (void)ld; (void)nco; (void)ct; (void)scale; (void)bias; (void)res; (void)y; (void)act;
}
void mlk_cot_store_avx512_(int hw, long ld, int nco, const float *ct, const float *scale, const float *bias,
                           const float *res, float *y, mlk_epilogue act) {
  (void)hw; (void)ld; (void)nco; (void)ct; (void)scale; (void)bias; (void)res; (void)y; (void)act;
}
void mlk_maxpool_plane_avx512_(const mlk_conv *p, const float *plane, float *dst) {
  (void)p; (void)plane; (void)dst;
  abort();
}
void mlk_gemm_direct_avx512_(int m, int width, int k, const float *a, long lda, const float *b, const long *boff,
                             float *c, long ldc, const float *bias, const float *scale, const float *res,
                             mlk_epilogue act) {
  (void)scale; (void)res; (void)m; (void)width; (void)k; (void)a; (void)lda; (void)b; (void)boff; (void)c; (void)ldc; (void)bias; (void)act;
  abort();
}
void mlk_gemm_wide_avx512_(int m, int width, int k, const float *a, long lda, const float *b, const long *boff,
                           long q0, int wq, int out_w, float *y, long ldy, const float *bias, const float *scale,
                           const float *res, mlk_epilogue act) {
  (void)m; (void)width; (void)k; (void)a; (void)lda; (void)b; (void)boff; (void)q0; (void)wq; (void)out_w; (void)y;
  (void)ldy; (void)bias; (void)scale; (void)res; (void)act;
  abort();
}
void mlk_depthwise_nhwc_row_avx512_(const mlk_conv *p, const float *xn, const float *w, const float *bias, float *yn, int oh,
                                    mlk_epilogue act) {
  (void)p; (void)xn; (void)w; (void)bias; (void)yn; (void)oh; (void)act;
  abort();
}
void mlk_depthwise_planes_avx512_(const mlk_conv *p, const float *x, const float *w, const float *bias, float *y, int n,
                                  int o0, int o1, const mlk_dw_flat *flat, mlk_epilogue act) {
  (void)p; (void)x; (void)w; (void)bias; (void)y; (void)n; (void)o0; (void)o1; (void)flat; (void)act;
  abort();
}
void mlk_gemm_packed_avx512_(int m, int width, int k, const float *a, long lda, const float *bpanels, float *c,
                             long ldc, const float *bias, const float *col_bias, const float *scale, const float *res,
                             mlk_epilogue act, int accumulate, int finish) {
  (void)scale; (void)res; (void)accumulate; (void)finish; (void)col_bias; (void)m; (void)width; (void)k; (void)a; (void)lda; (void)bpanels; (void)c; (void)ldc; (void)bias; (void)act;
  abort();
}
#endif
