// NCHW convolution of stride 1 or 2 without im2col: the padded input (or its four phases) read
// as the GEMM's B through row offsets ("wide" columns).
#include "conv_nchw_paths.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// Convolutions with stride 1 or 2 without im2col. With the input zero-padded to [C, Hp, Wp],
// output pixel (oh, ow) read at "wide" column q = oh * Wp + ow sees its tap (c, kh, kw) at
// padded index q + c*Hp*Wp + kh*dil*Wp + kw*dil: every row of the GEMM's B matrix is a window of
// the padded input at a fixed offset, so the GEMM reads the input directly. The wide output has
// Wp - out_w extra columns per row, computed and dropped when the tile is copied into place
// (without horizontal padding there are none, and the GEMM writes into y directly; with it, rows
// share their padding, see direct_dims, so Wp is in_w + max(pad_left, pad_right)).
// Stride 2 first splits the padded input into its four phases (even/odd rows x even/odd
// columns, each Hq x Wq = ceil(Hp/2) x ceil(Wp/2)): tap (kh, kw) then reads phase
// (kh*dil % 2, kw*dil % 2) at row and column offsets kh*dil/2 and kw*dil/2, contiguous again
// along q = oh * Wq + ow. One pass over the input instead of a k_h*k_w-fold im2col.
//

int mlk_direct_ok_(const mlk_conv *p) {
  // 1x1 convolutions with many output channels pack instead: their B rows are whole input planes
  // apart (a page or more), and contiguous panels measured a few percent faster on ResNet50's
  // 1x1s with 256 or more. With few output channels the packing (one copy of the whole input) is
  // not paid back: reading the planes in place was faster for up to 160 (harness, 1 thread:
  // MobileNetV2's projections 96->24 and 144->24 on 56x56 18-20%, 192->32 on 28x28 16%, 384->64
  // on 14x14 12%, 576->96 5%; ResNet50's 256->64 on 56x56 5%, 512->128 on 28x28 2%).
  // Planes of 32q + 17 outputs (7x7) go to the packed GEMM, whose last 49 columns run as 48 + 1
  // (micro49); here a 3x3 "same" on 7x7 has 55 wide columns in two 32-column tiles. The packing
  // (im2col) is paid back with enough output channels (harness, 1 thread, hot / cold: 3x3
  // 512->512 on 7x7 1.42 -> 1.34 / 1.46 -> 1.42 ms, stride 2 from 14x14 1.54 -> 1.39 / 1.70 ->
  // 1.50; 1x1 960->160 0.111 -> 0.077 / 0.105 -> 0.094; but 3x3 256->256 0.37 -> 0.40).
  if (p->out_h * p->out_w % 32 == 17 && p->out_c >= (p->k_h * p->k_w == 1 ? 128 : 512)) return 0;
  return mlk_use_avx512_() && p->groups == 1 && p->stride_h == p->stride_w && (p->stride_w == 1 || p->stride_w == 2) &&
         (p->k_h > 1 || p->k_w > 1 || (p->stride_w == 1 && p->out_c <= 160));
}

typedef struct {
  const mlk_conv *p;
  const float *xpad, *w, *bias, *scale;
  const long *off;
  float *y, *tmp;
  const float *res;
  int wp, wide_n, m_chunks, m_chunk, kk, in_place, tile_w;
  mlk_epilogue act;
} wide_job;

// dst = act(src + res) over n floats (res may be NULL); for copying tiles into place. (The direct
// path runs only with the AVX-512 kernels; the scalar loop stands for the one they replace.)
static void store_act(float *dst, const float *src, const float *res, int n, mlk_epilogue act) {
  if (mlk_use_avx512_()) {
    mlk_store_act_avx512_(dst, src, res, n, act);
    return;
  }
  if (res)
    for (int i = 0; i < n; i++) dst[i] = src[i] + res[i];
  else
    memcpy(dst, src, sizeof(float) * (size_t)n);
  if (act.kind != 4) mlk_activate(dst, (size_t)n, act.kind, act.lo, act.hi);
}

static void wide_task(void *ctx, int t) {
  const wide_job *j = ctx;
  const mlk_conv *p = j->p;
  const int out_hw = p->out_h * p->out_w;
  int chunk = t % j->m_chunks, tile = t / j->m_chunks;
  int q0 = tile * j->tile_w, width = j->wide_n - q0 < j->tile_w ? j->wide_n - q0 : j->tile_w;
  int r0 = chunk * j->m_chunk, rows = p->out_c - r0 < j->m_chunk ? p->out_c - r0 : j->m_chunk;
  if (rows <= 0) return;
  const float *wr = j->w + (size_t)r0 * j->kk, *br = j->bias ? j->bias + r0 : NULL, *sr = j->scale ? j->scale + r0 : NULL;
  if (j->in_place) {
    mlk_gemm_direct_avx512_(rows, width, j->kk, wr, j->kk, j->xpad + q0, j->off, j->y + (size_t)r0 * out_hw + q0, out_hw, br,
                            sr, j->res ? j->res + (size_t)r0 * out_hw + q0 : NULL, j->act);
    return;
  }
  // Kept columns stored straight into place (no tile buffer, no second pass over the output):
  // stems 5-20% faster (harness: MobileNetV2's 3->32 3x3 stride 2 0.250 -> 0.228 ms, ResNet50's
  // 7x7 5%). With several blocks of k the partial sums would go through the output with masked,
  // line-splitting loads; a 3x3 64->64 on 56x56 (kk = 576) measured 0-3% slower that way.
  if (j->wp >= 16 && j->kk <= MLK_GEMM_KC) {
    mlk_gemm_wide_avx512_(rows, width, j->kk, wr, j->kk, j->xpad + q0, j->off, q0, j->wp, p->out_w,
                          j->y + (size_t)r0 * out_hw, out_hw, br, sr, j->res ? j->res + (size_t)r0 * out_hw : NULL, j->act);
    return;
  }
  float *tmp = j->tmp + (size_t)mlk_slot * j->m_chunk * MLK_TILE;
  // The residual and activation are applied as the kept columns are copied into place.
  const mlk_epilogue none = {0, 0, 0};
  mlk_gemm_direct_avx512_(rows, width, j->kk, wr, j->kk, j->xpad + q0, j->off, tmp, MLK_TILE, br, sr, NULL, none);
  for (int r = 0; r < rows; r++) {
    float *yr = j->y + (size_t)(r0 + r) * out_hw;
    const float *rr = j->res ? j->res + (size_t)(r0 + r) * out_hw : NULL;
    const float *tr = tmp + (size_t)r * MLK_TILE - q0;
    for (int q = q0; q < q0 + width;) {
      int oh = q / j->wp, ow = q % j->wp;
      int run = j->wp - ow < q0 + width - q ? j->wp - ow : q0 + width - q;
      int keep = ow < p->out_w ? (p->out_w - ow < run ? p->out_w - ow : run) : 0;
      if (keep > 0) {
        const size_t at = (size_t)oh * p->out_w + ow;
        store_act(yr + at, tr + q, rr ? rr + at : NULL, keep, j->act);
      }
      q += run;
    }
  }
}

typedef struct { const mlk_conv *p; const float *x; float *xpad; int hq, wq, x_blocked; } pad_job;

static void pad_channel(void *ctx, int c) {
  const pad_job *j = ctx;
  const mlk_conv *p = j->p;
  const float *src = j->x + (size_t)c * p->in_h * p->in_w;
  if (p->stride_w == 2) {
    // The channel's four phases, each [Hq, Wq]: phase (a, b) holds padded rows a, a+2, ... and
    // padded columns b, b+2, ...
    for (int a = 0; a < 2; a++)
      for (int b = 0; b < 2; b++) {
        float *dst = j->xpad + ((size_t)c * 4 + a * 2 + b) * j->hq * j->wq;
        for (int i = 0; i < j->hq; i++) {
          float *row = dst + (size_t)i * j->wq;
          const int ih = i * 2 + a - p->pad_top;
          if (ih < 0 || ih >= p->in_h) { memset(row, 0, sizeof(float) * (size_t)j->wq); continue; }
          const float *s = src + (size_t)ih * p->in_w;
          // Columns jj with 0 <= 2 jj + b - pad_left < in_w are copied, the rest zeroed.
          int lo, hi;
          valid_range(j->wq, p->in_w, 2, p->pad_left, b, &lo, &hi);
          for (int jj = 0; jj < lo; jj++) row[jj] = 0.0f;
          mlk_even_lanes_(row + lo, s + 2 * lo + b - p->pad_left, hi - lo);
          for (int jj = hi; jj < j->wq; jj++) row[jj] = 0.0f;
        }
      }
    return;
  }
  float *dst = j->xpad + (size_t)c * j->hq * j->wq;
  for (int r = 0; r < j->hq; r++) {
    float *row = dst + (size_t)r * j->wq;
    const int ih = r - p->pad_top;
    if (ih < 0 || ih >= p->in_h) {
      memset(row, 0, sizeof(float) * (size_t)j->wq);
      continue;
    }
    memset(row, 0, sizeof(float) * (size_t)p->pad_left);
    memcpy(row + p->pad_left, src + (size_t)ih * p->in_w, sizeof(float) * (size_t)p->in_w);
    memset(row + p->pad_left + p->in_w, 0, sizeof(float) * (size_t)(j->wq - p->pad_left - p->in_w));
  }
}

// Channels [16 b, 16 b + 16) of the padded input in the channels-as-vectors layout: [Hq][Wq][16],
// a pixel's 16 channels side by side (channels past in_c are zero). From NCHW input the rows are
// interleaved; from channel-blocked input (`x_blocked`, [C/16][H][W][16]) they are copied whole.
static void pad_block(void *ctx, int b) {
  const pad_job *j = ctx;
  const mlk_conv *p = j->p;
  const size_t in_hw = (size_t)p->in_h * p->in_w;
  const int nch = p->in_c - 16 * b < 16 ? p->in_c - 16 * b : 16;
  const float *src = j->x + (size_t)16 * b * in_hw;
  float *dst = j->xpad + (size_t)b * j->hq * j->wq * 16;
  for (int r = 0; r < j->hq; r++) {
    float *row = dst + (size_t)r * j->wq * 16;
    const int ih = r - p->pad_top;
    if (ih < 0 || ih >= p->in_h) {
      memset(row, 0, sizeof(float) * 16 * (size_t)j->wq);
      continue;
    }
    memset(row, 0, sizeof(float) * 16 * (size_t)p->pad_left);
    if (j->x_blocked)
      memcpy(row + 16 * p->pad_left, src + (size_t)ih * p->in_w * 16, sizeof(float) * 16 * (size_t)p->in_w);
    else
      mlk_interleave16_avx512_(src + (size_t)ih * p->in_w, (long)in_hw, nch, p->in_w, row + 16 * p->pad_left);
    memset(row + 16 * (p->pad_left + p->in_w), 0, sizeof(float) * 16 * (size_t)(j->wq - p->pad_left - p->in_w));
  }
}

// Rows and columns of each plane of the padded input (stride 1) or of each phase (stride 2).
// Stride 1 with horizontal padding shares one pad between neighbouring rows: a row holds
// max(pad_left, pad_right) zeros beside its values, and a tap reaching past a row's right end
// reads the next row's leading zeros instead. The wide output then has that many extra columns
// per row instead of pad_left + pad_right (3x3 "same": 29 for 28, 15 for 14), and one zero row
// at the bottom takes the last row's overflow.
static void direct_dims(const mlk_conv *p, int pre, int *hq, int *wq) {
  const int hp = p->in_h + p->pad_top + p->pad_bottom, wp = p->in_w + p->pad_left + p->pad_right;
  const int s = mlk_cot_fits_(p, pre) ? 1 : p->stride_w;   // channels-as-vectors reads strided pixels itself
  const int shared = p->pad_left < p->pad_right ? p->pad_left : p->pad_right;
  // (Sharing needs out_w <= Wq, so that each output keeps its own wide column: the smaller pad may
  // not exceed the kernel's reach.)
  if (s == 1 && (p->pad_left || p->pad_right) && shared <= (p->k_w - 1) * p->dil_w) {
    *wq = p->in_w + (p->pad_left > p->pad_right ? p->pad_left : p->pad_right);
    *hq = hp + 1;
  } else {
    *hq = (hp + s - 1) / s;
    *wq = (wp + s - 1) / s;
  }
}

// The padded input (stride 1) or its phases (stride 2): [C * s * s, Hq, Wq] floats; for channels
// as vectors, [ceil(C / 16), Hq, Wq, 16] at either stride.
static size_t conv_direct_input(const mlk_conv *p, int pre) {
  int hq, wq;
  direct_dims(p, pre, &hq, &wq);
  if (mlk_cot_fits_(p, pre)) return ((size_t)p->in_c + 15) / 16 * 16 * (size_t)hq * (size_t)wq;
  const size_t s = (size_t)p->stride_w;
  return (size_t)p->in_c * s * s * (size_t)hq * (size_t)wq;
}

size_t mlk_direct_scratch_(const mlk_conv *p, int pre) {
  const size_t kk = (size_t)p->in_c * p->k_h * p->k_w;
  // Each thread's tile of output rows: m_chunk rows, a multiple of 12 (up to out_c rounded up).
  const size_t rows = ((size_t)p->out_c + 11) / 12 * 12;
  const size_t tiles = mlk_cot_fits_(p, pre) ? mlk_cot_slot_(p) : rows * MLK_TILE;
  return conv_direct_input(p, pre) + 2 * kk + tiles * (size_t)(mlk_threads + 1);
}

void mlk_conv_direct_(const mlk_conv *p, const float *x, const float *w, const float *bias, const float *scale,
                             const float *res, float *y, float *scratch, mlk_epilogue act, const float *packed, int mode,
                             int x_blocked, int y_blocked) {
  if (packed && mode >= 1 && mlk_wino_fits_(p)) {
    mlk_conv_wino_(p, x, x_blocked, packed, bias, scale, res, y, y_blocked, scratch, act);
    return;
  }
  const int cot = mlk_cot_fits_(p, mode);
  const int s = cot ? 1 : p->stride_w;   // the layout's stride: 2 for phases
  int hq, wq;
  direct_dims(p, mode, &hq, &wq);
  const int kk = p->in_c * p->k_h * p->k_w, out_hw = p->out_h * p->out_w;
  const int padded = s > 1 || p->pad_top || p->pad_left || p->pad_bottom || p->pad_right;
  float *xpad = scratch;
  long *off = (long *)(scratch + conv_direct_input(p, mode));
  float *tmp = (float *)(off + kk);
  // Row kr = (c, kh, kw) of the reduction; nested loops (the divisions per row were 1% of
  // MobileNetV2, whose 1x1 convolutions reduce over up to 960 rows per call).
  for (int c = 0, kr = 0; c < p->in_c; c++)
    for (int kh = 0; kh < p->k_h; kh++)
      for (int kw = 0; kw < p->k_w; kw++, kr++) {
        const int dy = kh * p->dil_h, dx = kw * p->dil_w;
        if (cot)
          off[kr] = (((long)(c / 16) * hq + dy) * wq + dx) * 16 + c % 16;
        else if (s == 1)
          off[kr] = ((long)c * hq + dy) * wq + dx;
        else
          off[kr] = (((long)c * s * s + (long)(dy % s) * s + dx % s) * hq + dy / s) * wq + dx / s;
      }
  // With one block of k, 1x1 convolutions read in place and the wide tiles that store their kept
  // columns into place (stems) write each output once, as the GEMM goes: tile by tile, 12 rows
  // (channels) at a time. Tiles of 2048 columns instead of 256 write 8 KB of each row at a time
  // rather than 1 KB, which the memory takes better (harness, output in DRAM: MobileNetV2's
  // 16->96 on 112x112 0.338 -> 0.271 ms, 24->144 on 56x56 0.145 -> 0.130, its stem 0.231 ->
  // 0.199, ResNet50's 1.241 -> 1.201; with hot caches even). Only where that leaves two tiles per
  // thread or more. Each block of 12 rows sweeps the whole tile of B (kk rows of the tile's
  // width), so the tile narrows until that fits in half of L2 (512 KB): at 2048 columns ResNet50's
  // 256->64 1x1 on 56x56 (2 MB of B per tile, re-read from L3 by each of 6 row blocks) took 0.539
  // ms, at 512 0.472 (cold: 0.633 -> 0.582; 256->128 0.944 -> 0.914, cold 1.173 -> 1.037).
  const int in_place = wq == p->out_w && !cot;
  const int wide_n = (p->out_h - 1) * wq + p->out_w;
  int wide_w = MLK_TILE_WIDE;
  while (wide_w > MLK_TILE && (size_t)kk * wide_w * sizeof(float) > MLK_WIDE_B_BYTES) wide_w /= 2;
  int tile_w = (in_place || wq >= 16) && kk <= MLK_GEMM_KC && (wide_n + wide_w - 1) / wide_w >= 2 * mlk_threads
                         ? wide_w : MLK_TILE;
  int tiles = (wide_n + tile_w - 1) / tile_w;
  if (mlk_threads > 1 && tiles > 1) {
    tile_w = mlk_balanced_tile_(wide_n, tile_w, mlk_threads);
    tiles = (wide_n + tile_w - 1) / tile_w;
  }
  int m_chunks = 1;
  if (mlk_threads > 1 && tiles < 2 * mlk_threads) {
    const int most = p->out_c / 48 > 0 ? p->out_c / 48 : 1;
    m_chunks = (2 * mlk_threads + tiles - 1) / tiles;
    if (m_chunks > most) m_chunks = most;
    m_chunks = mlk_even_chunks_(tiles, m_chunks, most, mlk_threads);
  }
  // One column tile and too few output channels to share (MobileNetV2's 14x14 projections to 64
  // channels: one task, 0.089 ms at 2 threads where 1 thread takes 0.075): two narrower tiles,
  // whatever the thread count, since the column tiling decides which kernel sums a column
  // (results must not depend on the threads). 0.068-0.080 ms at 2 threads.
  if (tiles == 1 && p->out_c / 48 < 2 && !cot) {
    const int w = ((wide_n + 1) / 2 + 15) / 16 * 16;
    if (w >= 32 && w < tile_w) {
      tile_w = w;
      tiles = (wide_n + tile_w - 1) / tile_w;
    }
  }
  int m_chunk = ((p->out_c + m_chunks - 1) / m_chunks + 11) / 12 * 12;
  for (int n = 0; n < p->batch; n++) {
    const float *xn = x + (size_t)n * p->in_c * p->in_h * p->in_w;
    if (cot) {
      // Blocked input without padding is read where it lies (a 1x1 convolution's).
      const int as_is = x_blocked && hq == p->in_h && wq == p->in_w;
      pad_job pj = {p, xn, xpad, hq, wq, x_blocked};
      if (!as_is) mlk_parallel_((p->in_c + 15) / 16, pad_block, &pj);
      // Few panels of 32 output channels for the threads (DenseNet's 3x3 convolutions have one):
      // each panel's rows are shared out too; every task then transposes its panel's weights.
      const int groups = (p->out_c + 31) / 32;
      int row_chunks = mlk_threads > 1 && groups < 2 * mlk_threads ? (2 * mlk_threads + groups - 1) / groups : 1;
      if (row_chunks > p->out_h) row_chunks = p->out_h;
      row_chunks = mlk_even_chunks_(groups, row_chunks, p->out_h, mlk_threads);
      mlk_cot_job cj = {p, as_is ? xn : xpad, w, bias, scale, res ? res + (size_t)n * p->out_c * out_hw : NULL, off,
                    y + (size_t)n * p->out_c * out_hw, tmp, mlk_cot_slot_(p), wq, kk, row_chunks, act, packed, y_blocked};
      mlk_parallel_(groups * row_chunks, mlk_cot_task_, &cj);
      continue;
    }
    if (padded) {
      pad_job pj = {p, xn, xpad, hq, wq, 0};
      mlk_parallel_(p->in_c, pad_channel, &pj);
    }
    wide_job job = {p, padded ? xpad : xn, w, bias, scale, off, y + (size_t)n * p->out_c * out_hw, tmp,
                    res ? res + (size_t)n * p->out_c * out_hw : NULL, wq, wide_n, m_chunks, m_chunk, kk, in_place, tile_w, act};
    mlk_parallel_(tiles * m_chunks, wide_task, &job);
  }
}
