// NCHW convolution: im2col into the GEMM (OpenBLAS, or packed panels for the AVX-512 GEMM),
// and the entry points that choose among the im2col, direct, channels-as-vectors and Winograd
// paths.
#include "conv_nchw_paths.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// One row of the im2col matrix, tap (kh, kw) of one input plane, for output columns
// [col, col + width): runs along each output row, the input columns inside copied, padding zeroed.
static void im2col_row(const mlk_conv *p, const float *plane, int kh, int kw, int col, int width, float *row) {
  int j = 0;
  while (j < width) {
    int o = col + j, oh = o / p->out_w, ow0 = o % p->out_w;
    int run = p->out_w - ow0 < width - j ? p->out_w - ow0 : width - j;
    int ih = oh * p->stride_h - p->pad_top + kh * p->dil_h;
    float *dst = row + j;
    if (ih < 0 || ih >= p->in_h) {
      memset(dst, 0, sizeof(float) * (size_t)run);
    } else {
      const float *src = plane + (size_t)ih * p->in_w;
      int lo, hi;   // the run's columns whose input column lies inside the row
      valid_range(ow0 + run, p->in_w, p->stride_w, p->pad_left, kw * p->dil_w, &lo, &hi);
      if (lo < ow0) lo = ow0;
      if (hi < lo) hi = lo;
      const int shift = -p->pad_left + kw * p->dil_w;
      for (int r = ow0; r < lo; r++) dst[r - ow0] = 0.0f;
      if (p->stride_w == 1) {
        memcpy(dst + (lo - ow0), src + lo + shift, sizeof(float) * (size_t)(hi - lo));
      } else if (p->stride_w == 2) {
        mlk_even_lanes_(dst + (lo - ow0), src + lo * 2 + shift, hi - lo);
      } else {
        for (int r = lo; r < hi; r++) dst[r - ow0] = src[r * p->stride_w + shift];
      }
      for (int r = hi; r < ow0 + run; r++) dst[r - ow0] = 0.0f;
    }
    j += run;
  }
}

// One tile of output columns [col, col + width) for one image and group: im2col of just
// those columns into `cols` (kk x width), then one sgemm into y (ldc = out_hw).
static void conv_nchw_tile(const mlk_conv *p, const float *xg, const float *wg, float *yg, float *cols, int col, int width) {
  const int cin_g = p->in_c / p->groups, cout_g = p->out_c / p->groups;
  const int out_hw = p->out_h * p->out_w, in_hw = p->in_h * p->in_w;
  const int kk = cin_g * p->k_h * p->k_w;
  for (int c = 0; c < cin_g; c++)
    for (int kh = 0; kh < p->k_h; kh++)
      for (int kw = 0; kw < p->k_w; kw++)
        im2col_row(p, xg + (size_t)c * in_hw, kh, kw, col, width, cols + ((size_t)(c * p->k_h + kh) * p->k_w + kw) * width);
  mlk_cblas_sgemm_(MLK_ROW_MAJOR_, MLK_NO_TRANS_, MLK_NO_TRANS_, cout_g, width, kk, 1.0f, wg, kk, cols, width, 0.0f, yg + col, out_hw);
}

typedef struct {
  const mlk_conv *p;
  const float *x, *w;
  float *y, *scratch;
  int tiles_per_image;
} conv_job;

// (mlk_slot: the caller of a parallel section uses scratch slot 0, pool worker i slot i + 1.)
static void conv_tile(void *ctx, int t) {
  const conv_job *j = ctx;
  const mlk_conv *p = j->p;
  const int g = p->groups, cin_g = p->in_c / g, cout_g = p->out_c / g;
  const int out_hw = p->out_h * p->out_w, in_hw = p->in_h * p->in_w;
  const int kk = cin_g * p->k_h * p->k_w;
  int image = t / j->tiles_per_image, tile = t % j->tiles_per_image;
  int n = image / g, gi = image % g;
  int col = tile * MLK_TILE, width = out_hw - col < MLK_TILE ? out_hw - col : MLK_TILE;
  float *scratch = j->scratch + (size_t)kk * MLK_TILE * (size_t)mlk_slot;
  conv_nchw_tile(p, j->x + ((size_t)n * p->in_c + (size_t)gi * cin_g) * in_hw, j->w + (size_t)gi * cout_g * kk,
                 j->y + ((size_t)n * p->out_c + (size_t)gi * cout_g) * out_hw, scratch, col, width);
}

// im2col rows one thread's scratch slot holds.
static size_t conv_nchw_slot_rows(const mlk_conv *p) {
  size_t kk = (size_t)(p->in_c / p->groups) * p->k_h * p->k_w;
  return mlk_use_avx512_() && kk > MLK_KBLOCK ? MLK_KBLOCK : kk;
}


// A 1x1 convolution with stride > 1 and no padding reads every stride-th row and column only:
// those are copied into a compact image first, which is then convolved with stride 1 and packed by
// plain row copies (ResNet50's three downsampling layers 7-9% faster in the model than a gather per
// tile and per output row through im2col_row).
// With the AVX-512 kernels, stride 2 skips the compact image: the packing gathers each row of the
// GEMM's B from the input in one call per row of k (im2col_panels), requesting the input lines of
// the row PF_ROWS ahead. Harness, 1 thread, hot / cold (input from DRAM): ResNet50's downsampling
// 1024->2048 from 14x14 1.140 -> 1.091 / 1.403 -> 1.356 ms, 512->1024 from 28x28 0.948 -> 0.940 /
// 1.159 -> 1.024, 256->512 from 56x56 0.961 -> 0.942 / 1.134 -> 1.013.
static int strided_1x1(const mlk_conv *p) {
  return p->k_h == 1 && p->k_w == 1 && (p->stride_h > 1 || p->stride_w > 1) && p->pad_top == 0 && p->pad_left == 0 &&
         p->pad_bottom == 0 && p->pad_right == 0;
}

static int gathered_1x1(const mlk_conv *p) {
  return strided_1x1(p) && p->stride_h == 2 && p->stride_w == 2 && mlk_use_avx512_();
}

// One input and one output pixel, window 1x1, one group: a matrix-vector product (mlk_sgemm).
static int one_pixel_1x1(const mlk_conv *p) {
  return p->groups == 1 && p->k_h == 1 && p->k_w == 1 && p->in_h == 1 && p->in_w == 1 && p->out_h == 1 && p->out_w == 1 &&
         p->pad_top == 0 && p->pad_left == 0 && p->pad_bottom == 0 && p->pad_right == 0 && mlk_use_avx512_();
}

int mlk_conv_nchw_runs_gemv(const mlk_conv *p) { return one_pixel_1x1(p); }

static int subsampled_1x1(const mlk_conv *p, mlk_conv *compact) {
  if (!strided_1x1(p) || gathered_1x1(p)) return 0;
  *compact = *p;
  compact->in_h = p->out_h;
  compact->in_w = p->out_w;
  compact->stride_h = compact->stride_w = 1;
  return 1;
}

size_t mlk_conv_nchw_scratch(const mlk_conv *p) {
  mlk_conv c;
  if (subsampled_1x1(p, &c)) return mlk_conv_nchw_scratch(&c) + (size_t)p->batch * p->in_c * p->out_h * p->out_w;
  // One tile of im2col columns for every thread that may take part (the caller and the workers;
  // worker i uses slot i + 1, and at most mlk_threads - 1 workers join a section).
  size_t im2col = conv_nchw_slot_rows(p) * MLK_TILE * (size_t)(mlk_threads + 1);
  return mlk_direct_ok_(p) ? mlk_direct_scratch_(p, 0) : im2col;
}

typedef struct { const mlk_conv *p; const float *x; float *xs; } subsample_job;

// Plane t (image and channel) of the compact image: input (oh * stride_h, ow * stride_w).
static void subsample_plane(void *ctx, int t) {
  const subsample_job *j = ctx;
  const mlk_conv *p = j->p;
  const float *src = j->x + (size_t)t * p->in_h * p->in_w;
  float *dst = j->xs + (size_t)t * p->out_h * p->out_w;
  for (int oh = 0; oh < p->out_h; oh++) {
    const float *row = src + (size_t)oh * p->stride_h * p->in_w;
    float *d = dst + (size_t)oh * p->out_w;
    if (p->stride_w == 2) mlk_even_lanes_(d, row, p->out_w);
    else for (int ow = 0; ow < p->out_w; ow++) d[ow] = row[(size_t)ow * p->stride_w];
  }
}

// im2col of output columns [col, col + width) of one image and group, written straight into the
// packed form the AVX-512 GEMM reads: panel j holds rows 0..kk-1 of columns 32j..32j+31 (zero
// past width), 32 floats per row.
// Only rows [k0, k1) of the im2col matrix are written (panel rows 0..k1-k0-1).
// A stretch of a tile's output columns that lies in one output row: where it starts in the tile,
// its output row and first column, its length; with the input columns inside the row for each kw.
typedef struct { int j, oh, ow0, run; } tile_run;
#define RUN_KW_MAX 16   // widest kernel whose column bounds are worked out once per tile

// The tile's runs, and for each kw and run the columns [lo, hi) whose input lies inside the row:
// worked out once per tile rather than once per im2col row (144 rows of a 3x3 convolution over 16
// channels), where their integer divisions took most of the time of grouped convolutions on small
// planes.
static int tile_runs(const mlk_conv *p, int col, int width, tile_run *runs, int *lo, int *hi) {
  int n = 0, oh = col / p->out_w, ow0 = col % p->out_w;
  for (int j = 0; j < width; oh++, ow0 = 0) {
    const int run = p->out_w - ow0 < width - j ? p->out_w - ow0 : width - j;
    runs[n++] = (tile_run){j, oh, ow0, run};
    j += run;
  }
  for (int kw = 0; kw < p->k_w; kw++)
    for (int r = 0; r < n; r++) {
      int l, h;
      valid_range(runs[r].ow0 + runs[r].run, p->in_w, p->stride_w, p->pad_left, kw * p->dil_w, &l, &h);
      if (l < runs[r].ow0) l = runs[r].ow0;
      if (h < l) h = l;
      lo[kw * n + r] = l;
      hi[kw * n + r] = h;
    }
  return n;
}

// im2col_row over precomputed runs (the same values).
static void im2col_row_runs(const mlk_conv *p, const float *plane, int kh, int kw, const tile_run *runs, int n,
                            const int *lo, const int *hi, float *row) {
  const int shift = -p->pad_left + kw * p->dil_w;
  for (int r = 0; r < n; r++) {
    const int ow0 = runs[r].ow0, run = runs[r].run, ih = runs[r].oh * p->stride_h - p->pad_top + kh * p->dil_h;
    float *dst = row + runs[r].j;
    if (ih < 0 || ih >= p->in_h) {
      memset(dst, 0, sizeof(float) * (size_t)run);
      continue;
    }
    const float *src = plane + (size_t)ih * p->in_w;
    const int l = lo[kw * n + r], h = hi[kw * n + r];
    for (int c = ow0; c < l; c++) dst[c - ow0] = 0.0f;
    if (p->stride_w == 1) memcpy(dst + (l - ow0), src + l + shift, sizeof(float) * (size_t)(h - l));
    else if (p->stride_w == 2) mlk_even_lanes_(dst + (l - ow0), src + l * 2 + shift, h - l);
    else for (int c = l; c < h; c++) dst[c - ow0] = src[c * p->stride_w + shift];
    for (int c = h; c < ow0 + run; c++) dst[c - ow0] = 0.0f;
  }
}

static void im2col_panels(const mlk_conv *p, const float *xg, float *panels, int col, int width, int k0, int k1) {
  const int in_hw = p->in_h * p->in_w, taps = p->k_h * p->k_w;
  const int kk = k1 - k0, npanels = (width + 31) / 32;
  const int plain = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 &&
                    p->pad_left == 0 && p->out_h == p->in_h && p->out_w == p->in_w;
  const int gathered = gathered_1x1(p);
  float row[MLK_TILE + 32];
  tile_run runs[MLK_TILE + 32];
  int lo[RUN_KW_MAX * (MLK_TILE + 32)], hi[RUN_KW_MAX * (MLK_TILE + 32)];
  const int precomputed = !plain && !gathered && p->k_w <= RUN_KW_MAX && width <= MLK_TILE + 32;
  const int nruns = precomputed ? tile_runs(p, col, width, runs, lo, hi) : 0;
  for (int kr = k0; kr < k1; kr++) {
        const int c = kr / taps, kh = (kr % taps) / p->k_w, kw = kr % p->k_w;
        const int krow = kr - k0;
        const float *plane = xg + (size_t)c * in_hw;
        const float *src_row = row;
        if (plain) {
          src_row = plane + col;   // a 1x1 convolution reads the input rows as they are
          // Rows are whole planes apart, too many streams for the hardware prefetcher to follow:
          // the row PF_ROWS ahead is requested while this one is copied.
          if (kr + PF_ROWS < k1)
            for (int q = 0; q < width; q += 16) __builtin_prefetch(plane + (size_t)PF_ROWS * in_hw + col + q, 0, 3);
          if (width % 32) {
            memcpy(row, src_row, sizeof(float) * (size_t)width);
            src_row = row;
          }
        } else if (gathered) {
          mlk_subsample2_row_avx512_(row, plane, p->in_w, p->out_w, col, width,
                                     kr + PF_ROWS < k1 ? plane + (size_t)PF_ROWS * in_hw : NULL);
        } else if (precomputed) {
          im2col_row_runs(p, plane, kh, kw, runs, nruns, lo, hi, row);
        } else {
          im2col_row(p, plane, kh, kw, col, width, row);
        }
        if (width % 32) memset(row + width, 0, sizeof(float) * (size_t)(npanels * 32 - width));
        for (int jp = 0; jp < npanels; jp++) memcpy(panels + ((size_t)jp * kk + krow) * 32, src_row + jp * 32, 32 * sizeof(float));
  }
}

typedef struct {
  const mlk_conv *p;
  const float *x, *w, *bias;
  float *y, *scratch;
  int tiles_per_image, tile_w, m_chunks, m_chunk;
  mlk_epilogue act;
  const float *res, *scale;
} pconv_job;

// One task: a tile of output columns of one image and group, and a chunk of its output channels.
static void pconv_task(void *ctx, int t) {
  const pconv_job *j = ctx;
  const mlk_conv *p = j->p;
  const int g = p->groups, cin_g = p->in_c / g, cout_g = p->out_c / g;
  const int out_hw = p->out_h * p->out_w, in_hw = p->in_h * p->in_w;
  const int kk = cin_g * p->k_h * p->k_w;
  int chunk = t % j->m_chunks;
  t /= j->m_chunks;
  int tile = t % j->tiles_per_image, image = t / j->tiles_per_image;
  int n = image / g, gi = image % g;
  int col = tile * j->tile_w, width = out_hw - col < j->tile_w ? out_hw - col : j->tile_w;
  int r0 = chunk * j->m_chunk, rows = cout_g - r0 < j->m_chunk ? cout_g - r0 : j->m_chunk;
  if (rows <= 0) return;
  // The im2col matrix is built and consumed MLK_KBLOCK rows at a time, so the panels stay in L2;
  // C accumulates across the blocks in k order.
  float *panels = j->scratch + conv_nchw_slot_rows(p) * MLK_TILE * (size_t)mlk_slot;
  for (int k0 = 0; k0 < kk; k0 += MLK_KBLOCK) {
    const int k1 = kk - k0 < MLK_KBLOCK ? kk : k0 + MLK_KBLOCK;
    im2col_panels(p, j->x + ((size_t)n * p->in_c + (size_t)gi * cin_g) * in_hw, panels, col, width, k0, k1);
    const size_t at = ((size_t)n * p->out_c + (size_t)gi * cout_g + r0) * out_hw + col;
    mlk_gemm_packed_avx512_(rows, width, k1 - k0, j->w + ((size_t)gi * cout_g + r0) * kk + k0, kk, panels, j->y + at, out_hw,
                            j->bias ? j->bias + (size_t)gi * cout_g + r0 : NULL, NULL,
                            j->scale ? j->scale + (size_t)gi * cout_g + r0 : NULL, j->res ? j->res + at : NULL, j->act,
                            k0 > 0, k1 == kk);
  }
}

int mlk_conv_grouped_direct(const mlk_conv *p) {
  if (!mlk_use_avx512_() || p->groups <= 1 || p->in_c % p->groups || p->out_c % p->groups) return 0;
  const int cin_g = p->in_c / p->groups, cout_g = p->out_c / p->groups;
  return cin_g >= 2 && cout_g >= 1 && cout_g <= 16 && (p->stride_w == 1 || p->stride_w == 2) && p->k_w <= 16;   // DW_MAX_KW
}

int mlk_conv_nchw_residual_in_place_ok(const mlk_conv *p) {
  // Both AVX-512 paths (packed im2col and direct) store partial sums into y between blocks of
  // the reduction; with a single block the residual is read and the sum stored in the same
  // step. The direct path's copy into place reads the residual before it writes too.
  // The channels-as-vectors path keeps its partial sums in scratch and reads each residual value
  // just before it stores the result there, whatever k.
  _Static_assert(MLK_KBLOCK <= MLK_GEMM_KC, "one im2col block must be one GEMM block");
  // (A single pixel's matrix-vector product stores its sums before it adds the residual.)
  return mlk_use_avx512_() && !one_pixel_1x1(p) && ((size_t)(p->in_c / p->groups) * p->k_h * p->k_w <= MLK_KBLOCK ||
                               (mlk_direct_ok_(p) && mlk_cot_ok_(p)));
}

void mlk_conv_nchw(const mlk_conv *p, const float *x, const float *w, const float *bias, const float *scale,
                   const float *res, float *y, float *scratch, int act, float lo, float hi) {
  const int g = p->groups, cin_g = p->in_c / g, cout_g = p->out_c / g;
  const int out_hw = p->out_h * p->out_w, in_hw = p->in_h * p->in_w;
  const int kk = cin_g * p->k_h * p->k_w;
  if (one_pixel_1x1(p)) {
    // A 1x1 convolution of a single pixel (squeeze-and-excitation layers) is a matrix-vector
    // product: the GEMM path computed it as one column padded to a panel, at 8 GFLOP/s on
    // MobileNetV3's 960 -> 240 (0.054 ms, 1 thread, weights in cache) on one thread.
    for (int n = 0; n < p->batch; n++) {
      float *yn = y + (size_t)n * p->out_c;
      mlk_sgemm(0, 1, 1, p->out_c, p->in_c, 1.0f, x + (size_t)n * p->in_c, p->in_c, w, p->in_c, 0.0f, yn, p->out_c);
      const float *rn = res ? res + (size_t)n * p->out_c : NULL;
      for (int o = 0; o < p->out_c; o++) {
        float v = scale ? yn[o] * scale[o] : yn[o];
        if (bias) v += bias[o];
        yn[o] = rn ? v + rn[o] : v;
      }
    }
    mlk_activate(y, (size_t)p->batch * p->out_c, act, lo, hi);
    return;
  }
  mlk_conv compact;
  if (subsampled_1x1(p, &compact)) {
    float *xs = scratch + mlk_conv_nchw_scratch(&compact);
    subsample_job job = {p, x, xs};
    mlk_parallel_(p->batch * p->in_c, subsample_plane, &job);
    mlk_conv_nchw(&compact, xs, w, bias, scale, res, y, scratch, act, lo, hi);
    return;
  }
  if (mlk_conv_grouped_direct(p)) {
    mlk_conv_grouped_avx512_(p, x, w, bias, scale, res, y, (mlk_epilogue){act, lo, hi});
    if (act == 4) mlk_activate(y, (size_t)p->batch * p->out_c * out_hw, act, lo, hi);
    return;
  }
  if (mlk_direct_ok_(p)) {
    mlk_conv_direct_(p, x, w, bias, scale, res, y, scratch, (mlk_epilogue){act, lo, hi}, NULL, 0, 0, 0);
    if (act == 4) mlk_activate(y, (size_t)p->batch * p->out_c * out_hw, act, lo, hi);
    return;
  }
  if (mlk_use_avx512_()) {
    // Bias and activation are applied as the GEMM stores its results. Each element's sum runs in
    // k order whatever the split below, so results do not depend on the thread count.
    // Column tiles of equal work (mlk_balanced_tile_: 784 columns in tiles of 256 had put 512 on
    // one thread and 272 on the other; ResNeXt's 1x1 convolutions to 256 and 512 channels on
    // 28x28 ran 1.53x faster on 2 threads than on 1, 1.9x after).
    int tile_w = MLK_TILE, tiles_per_image = (out_hw + MLK_TILE - 1) / MLK_TILE;
    if (mlk_threads > 1 && tiles_per_image > 1 && (size_t)p->batch * g == 1) {
      tile_w = mlk_balanced_tile_(out_hw, MLK_TILE, mlk_threads);
      tiles_per_image = (out_hw + tile_w - 1) / tile_w;
    }
    int tiles = tiles_per_image * p->batch * g, m_chunks = 1;
    if (mlk_threads > 1 && tiles < 2 * mlk_threads) {
      // Few column tiles (late, small layers): share the output channels out as well.
      const int most = cout_g / 48 > 0 ? cout_g / 48 : 1;
      m_chunks = (2 * mlk_threads + tiles - 1) / tiles;
      if (m_chunks > most) m_chunks = most;
      m_chunks = mlk_even_chunks_(tiles, m_chunks, most, mlk_threads);
    }
    int m_chunk = (cout_g + m_chunks - 1) / m_chunks;
    m_chunk = (m_chunk + 11) / 12 * 12;
    pconv_job job = {p, x, w, bias, y, scratch, tiles_per_image, tile_w, m_chunks, m_chunk, {act, lo, hi}, res, scale};
    mlk_parallel_(tiles * m_chunks, pconv_task, &job);
    if (act == 4) mlk_activate(y, (size_t)p->batch * p->out_c * out_hw, act, lo, hi);
    return;
  }
  const int pointwise = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 &&
                        p->pad_left == 0 && p->out_h == p->in_h && p->out_w == p->in_w;
  if (pointwise) {
    for (int n = 0; n < p->batch; n++)
      for (int gi = 0; gi < g; gi++)
        mlk_sgemm(0, 0, cout_g, out_hw, kk, 1.0f, w + (size_t)gi * cout_g * kk, kk,
                  x + ((size_t)n * p->in_c + (size_t)gi * cin_g) * in_hw, out_hw, 0.0f,
                  y + ((size_t)n * p->out_c + (size_t)gi * cout_g) * out_hw, out_hw);
  } else {
    // Fixed tiles of 256 output columns: results do not depend on the thread count.
    int tiles_per_image = (out_hw + MLK_TILE - 1) / MLK_TILE;
    conv_job job = {p, x, w, y, scratch, tiles_per_image};
    mlk_parallel_(tiles_per_image * p->batch * g, conv_tile, &job);
  }
  if (scale) {
    for (int n = 0; n < p->batch; n++)
      for (int o = 0; o < p->out_c; o++) {
        float *row = y + ((size_t)n * p->out_c + o) * out_hw, a = scale[o], b = bias ? bias[o] : 0.0f;
        for (int i = 0; i < out_hw; i++) row[i] = row[i] * a + b;
      }
  } else {
    for (int n = 0; n < p->batch; n++) add_bias_nchw(y + (size_t)n * p->out_c * out_hw, bias, p->out_c, out_hw);
  }
  if (res)
    for (size_t i = 0, total = (size_t)p->batch * p->out_c * out_hw; i < total; i++) y[i] += res[i];
  mlk_activate(y, (size_t)p->batch * p->out_c * out_hw, act, lo, hi);
}

// Weights packed once (at plan time) for the channels-as-vectors path: panel g (output channels
// 32g..32g+31) holds, for every k of the reduction, its 32 channels' weights side by side (zero
// past out_c), [ceil(out_c / 32)][kk][32] (mlk_weight_panels_pack, the NHWC GEMM's layout too):
// what mlk_cot_task_ otherwise transposes block by block on every call.
int mlk_conv_nchw_cot_packs(const mlk_conv *p) { return mlk_cot_fits_(p, 1); }

double mlk_conv_nchw_lane_use(const mlk_conv *p) {
  if (mlk_conv_grouped_direct(p)) {
    // Rows in chunks of 16 columns: per tap a chunk costs a load, and a broadcast and a
    // multiply-add per output channel, however many of its lanes are outputs.
    const int chunks = (p->out_w + 15) / 16;
    return (double)p->out_w / (16.0 * chunks);
  }
  return 1;
}

size_t mlk_conv_nchw_packed_scratch(const mlk_conv *p) {
  const size_t direct = mlk_direct_scratch_(p, 1), wino = mlk_wino_fits_(p) ? mlk_wino_scratch_(p) : 0;
  return direct > wino ? direct : wino;
}

void mlk_conv_nchw_packed(const mlk_conv *p, const float *x, const float *panels, const float *bias, const float *scale,
                          const float *res, float *y, float *scratch, int act, float lo, float hi) {
  mlk_conv_direct_(p, x, NULL, bias, scale, res, y, scratch, (mlk_epilogue){act, lo, hi}, panels, 1, 0, 0);
  if (act == 4) mlk_activate(y, (size_t)p->batch * p->out_c * p->out_h * p->out_w, act, lo, hi);
}
