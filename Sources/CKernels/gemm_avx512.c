// AVX-512 single-precision GEMM for the convolutions and fully-connected layers, and the
// batch-1 matrix-vector product.
//
// Debian's OpenBLAS 0.3.21 runs its AVX2 (Haswell) kernels on this class of CPU: about
// 90-110 GFLOP/s per core where 512-bit FMA chains reach about 235. This kernel computes
// C = A * B with a 12 x 32 register tile (24 accumulators of 16 floats): per step of k it
// loads one row of 32 B values (two vectors), broadcasts 12 A values and issues 24 FMAs.
//
// Blocking: k in blocks of KC = 256. For each block and each 12-row strip of A, the strip (read
// where it lies, 12 x 256 floats) is multiplied with every 32-column panel of B, while the next
// strip is requested into L2. B arrives already packed in panels (the convolution writes its im2col
// straight into that form), so weights are read where they lie and never repacked.
// Strips whose rows lie a multiple of 4 KB apart (K = 1024, 2048, ...) map onto the same L1 sets;
// they are still read in place: once the next strip is requested ahead, a copy with another row
// stride was slower (it stalled on the weights from L3 or DRAM; measurements in
// Docs/journal/2026-12-kernel-comment-history.md).
//
// Every element of C is the bias plus its products summed in k order, whatever the tiling or
// thread count, so results do not depend on how work is shared out. (One exception in order, not
// in determinism: the last column of a 48 + 1 tile, micro49, and the last 1-4 columns of a B of
// width 32q + 1..4, microtail, sum lane-wise along k and then as a tree; which columns take those
// tiles depends on the shape only.)
#include "avx512.h"

#if MLK_AVX512_BUILD

#define MR 12
#define MR49 6   // rows of a 48 + 1 column tile (micro49)
#define NR 32
#define KC MLK_GEMM_KC

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

#endif
