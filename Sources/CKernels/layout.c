// Layout changes: NCHW <-> channel-blocked, transposition, the 32-channel weight panels.
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void mlk_blocked_from_nchw(int n, int c, int hw, const float *x, float *y) {
  for (int b = 0; b < n * (c / 16); b++) {
    const float *src = x + (size_t)b * 16 * hw;
    float *dst = y + (size_t)b * 16 * hw;
    if (mlk_use_avx512_()) {
      mlk_interleave16_avx512_(src, hw, 16, hw, dst);
      continue;
    }
    for (int q = 0; q < hw; q++)
      for (int i = 0; i < 16; i++) dst[(size_t)q * 16 + i] = src[(size_t)i * hw + q];
  }
}

void mlk_nchw_from_blocked(int n, int c, int hw, const float *x, float *y) {
  for (int b = 0; b < n * (c / 16); b++) {
    const float *src = x + (size_t)b * 16 * hw;
    float *dst = y + (size_t)b * 16 * hw;
    for (int q = 0; q < hw; q++)
      for (int i = 0; i < 16; i++) dst[(size_t)i * hw + q] = src[(size_t)q * 16 + i];
  }
}

size_t mlk_weight_panel_floats(int out_c, int kk) { return (size_t)(out_c + 31) / 32 * 32 * (size_t)kk; }

// Panel jp holds output channels [32 jp, 32 jp + 32) as [kk][32] (zeros past out_c).
void mlk_weight_panels_pack(int out_c, int kk, const float *w, float *panels) {
  for (int jp = 0; jp < (out_c + 31) / 32; jp++)
    for (int k = 0; k < kk; k++) {
      float *dst = panels + ((size_t)jp * kk + k) * 32;
      for (int i = 0; i < 32; i++) {
        const int o = jp * 32 + i;
        dst[i] = o < out_c ? w[(size_t)o * kk + k] : 0.0f;
      }
    }
}

void mlk_weight_panels_unpack(int out_c, int kk, const float *panels, float *w) {
  for (int o = 0; o < out_c; o++)
    for (int k = 0; k < kk; k++) w[(size_t)o * kk + k] = panels[((size_t)(o / 32) * kk + k) * 32 + o % 32];
}

// A strided copy after its dimensions are simplified: no size-1 dimensions, and neighbours
// merged where the outer one steps over exactly the inner one's extent, so that a slice of
// whole rows or a transpose that keeps the last dimensions together copies long runs.
typedef struct {
  const char *x;
  char *y;
  int rank, elem;
  long shape[8], stride[8];   // elements; strides may be 0 (broadcast) or negative (reversed slices)
  long rows, run, per;        // rows of `run` output elements, `per` rows a task
} strided_job;

static void strided_rows(void *ctx, int t) {
  const strided_job *j = ctx;
  const int r = j->rank, e = j->elem;
  long r0 = (long)t * j->per, r1 = r0 + j->per < j->rows ? r0 + j->per : j->rows;
  // Odometer over the outer dimensions (all but the last), started at row r0.
  long idx[8] = {0}, off = 0, rem = r0;
  for (int d = r - 2; d >= 0; d--) { idx[d] = rem % j->shape[d]; rem /= j->shape[d]; off += idx[d] * j->stride[d]; }
  const long n = j->run, st = j->stride[r - 1];
  char *dst = j->y + (size_t)r0 * (size_t)n * (size_t)e;
  for (long row = r0; row < r1; row++) {
    const char *src = j->x + off * e;
    if (st == 1) memcpy(dst, src, (size_t)n * (size_t)e);
    else if (e == 4) { const uint32_t *s = (const uint32_t *)src; uint32_t *d = (uint32_t *)dst; for (long i = 0; i < n; i++) d[i] = s[i * st]; }
    else if (e == 8) { const uint64_t *s = (const uint64_t *)src; uint64_t *d = (uint64_t *)dst; for (long i = 0; i < n; i++) d[i] = s[i * st]; }
    else if (e == 2) { const uint16_t *s = (const uint16_t *)src; uint16_t *d = (uint16_t *)dst; for (long i = 0; i < n; i++) d[i] = s[i * st]; }
    else if (e == 1) { for (long i = 0; i < n; i++) dst[i] = src[i * st]; }
    else for (long i = 0; i < n; i++) memcpy(dst + i * e, src + i * st * e, (size_t)e);
    dst += (size_t)n * (size_t)e;
    for (int d = r - 2; d >= 0; d--) {
      off += j->stride[d];
      if (++idx[d] < j->shape[d]) break;
      off -= j->stride[d] * j->shape[d];
      idx[d] = 0;
    }
  }
}

// A strided copy whose last two dimensions transpose a matrix of 4-byte elements: the input's
// unit stride lies on the second-to-last output dimension (NCHW <-> NHWC, ConvNeXt's permutes
// around each block). Row by row, each output row gathered one element per cache line; instead,
// bands of output rows are transposed in 16 x 16 blocks (in registers with AVX-512, in cache
// without), so that both sides are read and written along their lines.
typedef struct {
  const float *x;
  float *y;
  int outer_rank;
  long outer_shape[8], outer_stride[8];
  long ni, nk, lds, band, bands;   // output [ni][nk] per outer index, input stride of k
} transpose_job;

static void transpose_band(void *ctx, int t) {
  const transpose_job *j = ctx;
  const long o = t / j->bands, i0 = (t % j->bands) * j->band, i1 = i0 + j->band < j->ni ? i0 + j->band : j->ni;
  long off = 0, rem = o;
  for (int d = j->outer_rank - 1; d >= 0; d--) { off += rem % j->outer_shape[d] * j->outer_stride[d]; rem /= j->outer_shape[d]; }
  const float *src = j->x + off + i0;
  float *dst = j->y + (size_t)o * (size_t)(j->ni * j->nk) + (size_t)i0 * (size_t)j->nk;
  if (mlk_use_avx512_()) {
    mlk_transpose_block_avx512_(src, j->lds, i1 - i0, j->nk, dst, j->nk);
    return;
  }
  for (long a0 = 0; a0 < i1 - i0; a0 += 16)
    for (long k0 = 0; k0 < j->nk; k0 += 16)
      for (long a = a0; a < a0 + 16 && a < i1 - i0; a++)
        for (long k = k0; k < k0 + 16 && k < j->nk; k++) dst[a * j->nk + k] = src[k * j->lds + a];
}

static int transpose_tiled(const strided_job *s) {
  const int r = s->rank;
  if (s->elem != 4 || r < 2 || s->stride[r - 2] != 1 || s->stride[r - 1] < s->shape[r - 2] || s->shape[r - 1] < 4) return 0;
  transpose_job j = {.x = (const float *)s->x, .y = (float *)s->y, .outer_rank = r - 2};
  long outer = 1;
  for (int d = 0; d < r - 2; d++) {
    j.outer_shape[d] = s->shape[d];
    j.outer_stride[d] = s->stride[d];
    outer *= s->shape[d];
  }
  j.ni = s->shape[r - 2];
  j.nk = s->shape[r - 1];
  j.lds = s->stride[r - 1];
  // Bands of about 16K elements (a multiple of 16 rows): a task worth a thread, fixed whatever
  // the thread count.
  j.band = (16384 / j.nk + 15) / 16 * 16;
  if (j.band < 16) j.band = 16;
  j.bands = (j.ni + j.band - 1) / j.band;
  mlk_parallel_((int)(outer * j.bands), transpose_band, &j);
  return 1;
}

void mlk_copy_strided(const void *x, void *y, int rank, const long *shape, const long *stride, int elem) {
  strided_job j = {.x = x, .y = y, .elem = elem};
  long total = 1;
  for (int d = 0; d < rank; d++) total *= shape[d];
  if (total == 0) return;
  for (int d = 0; d < rank; d++) {
    if (shape[d] == 1) continue;
    if (j.rank > 0 && j.stride[j.rank - 1] == stride[d] * shape[d]) {   // merges with the dimension before
      j.shape[j.rank - 1] *= shape[d];
      j.stride[j.rank - 1] = stride[d];
      continue;
    }
    j.shape[j.rank] = shape[d];
    j.stride[j.rank] = stride[d];
    j.rank++;
  }
  if (j.rank == 0) { j.shape[0] = 1; j.stride[0] = 1; j.rank = 1; }
  if (transpose_tiled(&j)) return;
  j.run = j.shape[j.rank - 1];
  j.rows = total / j.run;
  // Tasks of at least 64 KB of output: a copy is bound by memory, and small ones are not worth
  // a second thread.
  const long per_bytes = 65536, row_bytes = j.run * elem;
  j.per = row_bytes >= per_bytes ? 1 : per_bytes / row_bytes;
  mlk_parallel_((int)((j.rows + j.per - 1) / j.per), strided_rows, &j);
}

void mlk_transpose(const void *x, void *y, int rank, const long *shape, const int *perm, int elem) {
  if (rank == 0) { memcpy(y, x, (size_t)elem); return; }
  long in_strides[8], out_shape[8], strides[8];
  in_strides[rank - 1] = 1;
  for (int i = rank - 2; i >= 0; i--) in_strides[i] = in_strides[i + 1] * shape[i + 1];
  for (int i = 0; i < rank; i++) { out_shape[i] = shape[perm[i]]; strides[i] = in_strides[perm[i]]; }
  mlk_copy_strided(x, y, rank, out_shape, strides, elem);
}

// Constant padding, output row by output row: a row is the output's extent along the last padded
// axis times the axes after it, and holds its left padding, the input's row and its right
// padding, or padding only where an outer index lies in the padding. Each byte of the output is
// written once, by whichever thread owns its rows (tasks of at least 64 KB: the copy is bound by
// memory). TFLite's explicit PAD before a convolution is one such copy of the whole activation.
typedef struct {
  const char *x;
  char *y;
  const char *value;
  int k, elem, zero;
  long xshape[8], yshape[8], before[8], in_row, out_row, left, rows, per;
} pad_job;

static void pad_fill(const pad_job *j, char *dst, long bytes) {
  if (bytes <= 0) return;
  if (j->elem == 4) {   // rows of a few channels (TFLite's channel padding): no call per row
    uint32_t v;
    memcpy(&v, j->value, 4);
    uint32_t *d = (uint32_t *)dst;
    for (long i = 0; i < bytes / 4; i++) d[i] = v;
    return;
  }
  if (j->zero) { memset(dst, 0, (size_t)bytes); return; }
  for (long b = 0; b < bytes; b += j->elem) memcpy(dst + b, j->value, (size_t)j->elem);
}

static void pad_rows(void *ctx, int t) {
  const pad_job *j = ctx;
  const long r0 = (long)t * j->per, r1 = r0 + j->per < j->rows ? r0 + j->per : j->rows;
  long idx[8] = {0}, rem = r0;
  for (int d = j->k - 1; d >= 0; d--) { idx[d] = rem % j->yshape[d]; rem /= j->yshape[d]; }
  for (long r = r0; r < r1; r++) {
    char *at = j->y + r * j->out_row;
    long src = 0;
    int inside = 1;
    for (int d = 0; d < j->k && inside; d++) {
      const long s = idx[d] - j->before[d];
      inside = s >= 0 && s < j->xshape[d];
      src = src * j->xshape[d] + s;
    }
    if (inside && j->in_row > 0) {
      pad_fill(j, at, j->left);
      memcpy(at + j->left, j->x + src * j->in_row, (size_t)j->in_row);
      pad_fill(j, at + j->left + j->in_row, j->out_row - j->left - j->in_row);
    } else {
      pad_fill(j, at, j->out_row);
    }
    for (int d = j->k - 1; d >= 0; d--) { if (++idx[d] < j->yshape[d]) break; idx[d] = 0; }
  }
}

void mlk_pad_constant(const void *x, void *y, int rank, const long *xshape, const long *yshape, const long *before, int elem,
                      const void *value) {
  if (rank < 1 || rank > 8 || elem < 1) return;
  pad_job j = {.x = x, .y = y, .value = value, .elem = elem, .zero = 1};
  for (int b = 0; b < elem; b++) if (((const char *)value)[b]) j.zero = 0;
  j.k = rank - 1;
  while (j.k > 0 && xshape[j.k] == yshape[j.k]) j.k--;
  for (int d = 0; d < rank; d++) { j.xshape[d] = xshape[d]; j.yshape[d] = yshape[d]; j.before[d] = before[d]; }
  long inner = elem;
  for (int d = j.k + 1; d < rank; d++) inner *= yshape[d];
  j.in_row = xshape[j.k] * inner;
  j.out_row = yshape[j.k] * inner;
  j.left = before[j.k] * inner;
  j.rows = 1;
  for (int d = 0; d < j.k; d++) j.rows *= yshape[d];
  if (j.rows == 0 || j.out_row == 0) return;
  j.per = j.out_row >= 65536 ? 1 : 65536 / j.out_row;
  mlk_parallel_((int)((j.rows + j.per - 1) / j.per), pad_rows, &j);
}

// Gather along an axis: y[o][i][r] = x[o][idx[i]][r] for rows r of `inner` elements, in tasks of
// at least 64 KB of output. Single elements (a channel permutation over NHWC pixels: TFLite's
// form of ShuffleNet's channel shuffle) are moved by type, not by memcpy calls.
typedef struct {
  const char *x;
  char *y;
  const long *idx;
  long outer, len, n, inner_bytes, rows, per;
} gather_job;

static void gather_rows(void *ctx, int t) {
  const gather_job *j = ctx;
  const long r0 = (long)t * j->per, r1 = r0 + j->per < j->rows ? r0 + j->per : j->rows;
  if (j->inner_bytes == 4) {
    const uint32_t *x = (const uint32_t *)j->x;
    uint32_t *y = (uint32_t *)j->y;
    for (long r = r0; r < r1; r++) {
      const long o = r / j->n, i = r - o * j->n;
      y[r] = x[o * j->len + j->idx[i]];
    }
    return;
  }
  for (long r = r0; r < r1; r++) {
    const long o = r / j->n, i = r - o * j->n;
    memcpy(j->y + r * j->inner_bytes, j->x + (o * j->len + j->idx[i]) * j->inner_bytes, (size_t)j->inner_bytes);
  }
}

void mlk_gather(const void *x, void *y, long outer, long len, long inner, const long *idx, long n, int elem) {
  gather_job j = {.x = x, .y = y, .idx = idx, .outer = outer, .len = len, .n = n, .inner_bytes = inner * elem, .rows = outer * n};
  if (j.rows <= 0 || j.inner_bytes <= 0) return;
  j.per = j.inner_bytes >= 65536 ? 1 : 65536 / j.inner_bytes;
  mlk_parallel_((int)((j.rows + j.per - 1) / j.per), gather_rows, &j);
}

// Concatenation as one copy of the output, cut into tasks of equal byte ranges: output byte p
// lies in row o = p / row, and within the row in the part of the input whose bytes cover p % row.
// Each task copies its range in runs (at most one per input and row), so a batch-1 NCHW
// concatenation along channels (one row, a few long runs) is shared out as well as an NHWC one
// (a row per pixel, short runs).
typedef struct {
  char *y;
  const char *const *x;
  const long *bytes;
  int n;
  long row, total, per;
} concat_job;

static void concat_range(void *ctx, int t) {
  const concat_job *j = ctx;
  long p = (long)t * j->per;
  const long end = p + j->per < j->total ? p + j->per : j->total;
  while (p < end) {
    const long o = p / j->row, r = p - o * j->row;
    long off = 0;
    int k = 0;
    while (k < j->n - 1 && r >= off + j->bytes[k]) off += j->bytes[k++];
    const long len = off + j->bytes[k] - r < end - p ? off + j->bytes[k] - r : end - p;
    memcpy(j->y + p, j->x[k] + o * j->bytes[k] + (r - off), (size_t)len);
    p += len;
  }
}

void mlk_concat(void *y, int n, const void *const *x, const long *bytes, long outer) {
  long row = 0;
  for (int k = 0; k < n; k++) row += bytes[k];
  if (n < 1 || row == 0 || outer < 1) return;
  concat_job j = {.y = y, .x = (const char *const *)x, .bytes = bytes, .n = n, .row = row, .total = row * outer};
  // Tasks of at least 64 KB, as for the strided copies: a copy is bound by memory.
  const long tasks = j.total / 65536 < 1 ? 1 : (j.total / 65536 > 256 ? 256 : j.total / 65536);
  j.per = (j.total + tasks - 1) / tasks;
  mlk_parallel_((int)tasks, concat_range, &j);
}

// Byte matrix transposition, 16 x 16 tiles. With SSE2 (every x86-64), four rounds of byte
// interleaving rows i and i + 8 transpose a tile in registers: each round is a perfect shuffle
// of the 256 positions' index bits, and four of them swap row and column.
#if defined(__SSE2__)
#include <emmintrin.h>
// One round from a to b, every index a constant so that both stay in registers.
#define TRANSPOSE_PAIR(a, b, i) \
  b[2 * (i)] = _mm_unpacklo_epi8(a[i], a[(i) + 8]); \
  b[2 * (i) + 1] = _mm_unpackhi_epi8(a[i], a[(i) + 8]);
#define TRANSPOSE_ROUND(a, b) \
  TRANSPOSE_PAIR(a, b, 0) TRANSPOSE_PAIR(a, b, 1) TRANSPOSE_PAIR(a, b, 2) TRANSPOSE_PAIR(a, b, 3) \
  TRANSPOSE_PAIR(a, b, 4) TRANSPOSE_PAIR(a, b, 5) TRANSPOSE_PAIR(a, b, 6) TRANSPOSE_PAIR(a, b, 7)
// nrows (at most 16) rows of 16 bytes in, 16 rows out; rows past nrows read as zeros. With
// ldy < 16 the stores overlap, each writing past its row into the next one's, which the next
// store (or the caller's next tile) then writes: they must go in this order.
static inline __attribute__((always_inline)) void transpose_tile16_body(const uint8_t *x, long ldx, int nrows, uint8_t *y, long ldy) {
  __m128i r[16], t[16];
  for (int i = 0; i < 16; i++) r[i] = i < nrows ? _mm_loadu_si128((const __m128i *)(x + i * ldx)) : _mm_setzero_si128();
  TRANSPOSE_ROUND(r, t)
  TRANSPOSE_ROUND(t, r)
  TRANSPOSE_ROUND(r, t)
  TRANSPOSE_ROUND(t, r)
  for (int i = 0; i < 16; i++) _mm_storeu_si128((__m128i *)(y + i * ldy), r[i]);
}
#undef TRANSPOSE_ROUND
#undef TRANSPOSE_PAIR
// With AVX-512 the same code gets 32 vector registers: no spills.
__attribute__((target("avx512f,avx512vl,avx512bw"))) static void transpose_tile16_avx512(const uint8_t *x, long ldx, int nrows, uint8_t *y,
                                                                                        long ldy) {
  transpose_tile16_body(x, ldx, nrows, y, ldy);
}
static void transpose_tile16_sse2(const uint8_t *x, long ldx, int nrows, uint8_t *y, long ldy) { transpose_tile16_body(x, ldx, nrows, y, ldy); }
static void transpose_tile16(const uint8_t *x, long ldx, int nrows, uint8_t *y, long ldy) {
  if (mlk_avx512_has_(MLK_AVX512_BW)) transpose_tile16_avx512(x, ldx, nrows, y, ldy); else transpose_tile16_sse2(x, ldx, nrows, y, ldy);
}
#else
static void transpose_tile16(const uint8_t *x, long ldx, int nrows, uint8_t *y, long ldy) {
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 16; j++) y[j * ldy + i] = i < nrows ? x[i * ldx + j] : 0;
}
#endif

typedef struct {
  const uint8_t *x;
  uint8_t *y;
  long rows, cols;
} transpose8_job;

static void transpose8_task(void *ctx, int t) {
  const transpose8_job *j = ctx;
  const long i0 = (long)t * 16, i1 = i0 + 16 <= j->rows ? i0 + 16 : j->rows;
  long j0 = 0;
  if (i1 - i0 == 16) {
    for (; j0 + 16 <= j->cols; j0 += 16) transpose_tile16(j->x + i0 * j->cols + j0, j->cols, 16, j->y + j0 * j->rows + i0, j->rows);
  } else if (j->rows < 16) {
    // Few rows (an image's three channels): whole output rows are this task's alone, so a tile's
    // stores may run into the next tile's, as long as one follows.
    for (; j0 + 32 <= j->cols; j0 += 16) transpose_tile16(j->x + j0, j->cols, (int)j->rows, j->y + j0 * j->rows, j->rows);
  }
  for (long c = j0; c < j->cols; c++)
    for (long i = i0; i < i1; i++) j->y[c * j->rows + i] = j->x[i * j->cols + c];
}

void mlk_transpose_bytes(long rows, long cols, const void *x, void *y) {
  if (rows <= 0 || cols <= 0) return;
  transpose8_job job = {x, y, rows, cols};
  mlk_parallel_((int)((rows + 15) / 16), transpose8_task, &job);
}
