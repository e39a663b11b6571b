// AVX-512 depthwise convolution over NCHW planes.
#include "avx512.h"

#if MLK_AVX512_BUILD

// Depthwise convolution over one NCHW plane. An output row is cut into chunks of 16 columns,
// and up to 8 chunks are accumulated in registers at once; each tap adds one FMA per chunk.
// Stride 1 loads the inputs directly; stride 2 loads 32 and keeps the even lanes. Loads are
// masked to the input row (masked-off lanes read as zero and do not fault), so padding needs
// no copies; the masks depend only on the chunk and the tap column and are computed once.
// Each output is the bias plus its taps in (kh, kw) order.

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

#endif
