// Pooling: max and average over windows (NCHW or NHWC), global average, max pooling into
// channel-blocked output.
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline void max_row(float *restrict dst, const float *restrict src, int n) {
  for (int c = 0; c < n; c++) dst[c] = src[c] > dst[c] ? src[c] : dst[c];
}

// Planes shared among threads in fixed groups of about 16384 values (blocked input: whole blocks
// of 16 planes), each summed alone: the same results at any thread count. Contiguous groups keep
// a thread on the planes the previous layer's contiguous tasks left in its own core's cache; one
// thread reading them all took EfficientNet-B0's squeeze-excitation pools from 0.31 ms at 1 thread
// to 0.49 at 2.
typedef struct { int inner, per, planes, blocked; const float *x; float *y; } gmean_job;

static void global_mean_planes(int planes, int inner, int blocked, const float *x, float *y) {
  if (mlk_use_avx512_()) {
    mlk_global_mean_avx512_(planes, inner, blocked, x, y);
    return;
  }
  const double inv = 1.0 / (inner > 0 ? inner : 1);
  for (int i = 0; i < planes; i++) {
    double s = 0;
    for (int j = 0; j < inner; j++) s += blocked ? x[((size_t)(i / 16) * inner + j) * 16 + i % 16] : x[(size_t)i * inner + j];
    y[i] = (float)(s * inv);
  }
}

static void global_mean_task(void *ctx, int t) {
  const gmean_job *j = ctx;
  const int i0 = t * j->per, i1 = i0 + j->per < j->planes ? i0 + j->per : j->planes;
  global_mean_planes(i1 - i0, j->inner, j->blocked, j->x + (size_t)i0 * j->inner, j->y + i0);
}

void mlk_global_mean(int planes, int inner, int blocked, const float *x, float *y) {
  if (planes <= 0) return;
  gmean_job job = {inner, 1, planes, blocked, x, y};
  job.per = (int)mlk_even_per_(planes, inner >= 16384 ? 1 : 16384 / (inner > 0 ? inner : 1), mlk_threads);
  if (blocked) job.per = (job.per + 15) / 16 * 16;
  mlk_parallel_((planes + job.per - 1) / job.per, global_mean_task, &job);
}

// The largest value of each plane; a NaN is passed over (as the NHWC max pooling does) and an
// empty plane gives -inf. Planes shared among threads in fixed groups.
typedef struct { int inner, per, planes; const float *x; float *y; } gmax_job;

static void global_max_task(void *ctx, int t) {
  const gmax_job *j = ctx;
  const int i0 = t * j->per, i1 = i0 + j->per < j->planes ? i0 + j->per : j->planes;
  if (mlk_use_avx512_()) {
    mlk_global_max_avx512_(i1 - i0, j->inner, j->x + (size_t)i0 * j->inner, j->y + i0);
    return;
  }
  for (int i = i0; i < i1; i++) {
    const float *xi = j->x + (size_t)i * j->inner;
    float m = -INFINITY;
    for (int k = 0; k < j->inner; k++) m = xi[k] > m ? xi[k] : m;
    j->y[i] = m;
  }
}

void mlk_global_max(int planes, int inner, const float *x, float *y) {
  if (planes <= 0) return;
  gmax_job job = {inner, 1, planes, x, y};
  job.per = (int)mlk_even_per_(planes, inner >= 16384 ? 1 : 16384 / (inner > 0 ? inner : 1), mlk_threads);
  mlk_parallel_((planes + job.per - 1) / job.per, global_max_task, &job);
}

// Pooling over one NCHW plane, tap by tap: every tap's valid outputs are combined into dst,
// by max (NaN wins) or by sum.
static void pool_taps(const mlk_conv *p, const float *plane, float *dst, int max) {
  for (int kh = 0; kh < p->k_h; kh++) {
    int oh_lo, oh_hi;
    valid_range(p->out_h, p->in_h, p->stride_h, p->pad_top, kh * p->dil_h, &oh_lo, &oh_hi);
    for (int kw = 0; kw < p->k_w; kw++) {
      int ow_lo, ow_hi;
      valid_range(p->out_w, p->in_w, p->stride_w, p->pad_left, kw * p->dil_w, &ow_lo, &ow_hi);
      for (int oh = oh_lo; oh < oh_hi; oh++) {
        const float *src = plane + (size_t)(oh * p->stride_h - p->pad_top + kh * p->dil_h) * p->in_w - p->pad_left + kw * p->dil_w;
        float *d = dst + (size_t)oh * p->out_w;
        if (max) {
          for (int ow = ow_lo; ow < ow_hi; ow++) {
            float v = src[ow * p->stride_w];
            d[ow] = (v > d[ow] || v != v) ? v : d[ow];
          }
        } else {
          for (int ow = ow_lo; ow < ow_hi; ow++) d[ow] += src[ow * p->stride_w];
        }
      }
    }
  }
}

// Along one axis, per output position: how many taps fall inside the input (or inside the padded
// extent, with count_include_pad).
static void tap_counts(int out, int k, int stride, int dil, int pad_begin, int pad_end, int in, int include_pad, float *counts) {
  for (int o = 0; o < out; o++) {
    int r = 0;
    for (int t = 0; t < k; t++) {
      int i = o * stride - pad_begin + t * dil;
      r += include_pad ? (i >= -pad_begin && i < in + pad_end) : (i >= 0 && i < in);
    }
    counts[o] = (float)r;
  }
}

typedef struct { const mlk_conv *p; const float *x; float *y; size_t per; } pool_job;

// Planes [t * per, ...) of the batch's n * C planes: at least 4096 input floats a task.
static void maxpool_plane_task(void *ctx, int t) {
  const pool_job *j = ctx;
  const mlk_conv *p = j->p;
  const size_t in_hw = (size_t)p->in_h * p->in_w, total = (size_t)p->batch * p->in_c;
  const size_t per = j->per, first = (size_t)t * per;
  mlk_maxpool_planes_avx512_(p, j->x + first * in_hw, j->y + first * p->out_h * p->out_w,
                             (int)(total - first < per ? total - first : per));
}

typedef struct { const mlk_conv *p; const float *x; float *y; const float *rows, *cols; int include_pad; size_t per; } avg_job;

static void avgpool_nhwc_task(void *ctx, int t) {
  const avg_job *j = ctx;
  const mlk_conv *p = j->p;
  const int n = t / p->out_h;
  mlk_avgpool_nhwc_row_avx512_(p, j->include_pad, j->x + (size_t)n * p->in_h * p->in_w * p->in_c,
                               j->y + (size_t)n * p->out_h * p->out_w * p->in_c, t % p->out_h);
}

// Planes [t * per, ...): at least 4096 input floats a task, as the max pooling.
static void avgpool_plane_task(void *ctx, int t) {
  const avg_job *j = ctx;
  const mlk_conv *p = j->p;
  const size_t in_hw = (size_t)p->in_h * p->in_w, total = (size_t)p->batch * p->in_c;
  const size_t per = j->per, first = (size_t)t * per;
  mlk_avgpool_planes_avx512_(p, j->x + first * in_hw, j->y + first * p->out_h * p->out_w, (int)(total - first < per ? total - first : per),
                             j->rows, j->cols);
}

static void maxpool_nhwc_task(void *ctx, int t) {
  const pool_job *j = ctx;
  const mlk_conv *p = j->p;
  const int n = t / p->out_h;
  mlk_maxpool_nhwc_row_avx512_(p, j->x + (size_t)n * p->in_h * p->in_w * p->in_c, j->y + (size_t)n * p->out_h * p->out_w * p->in_c,
                               t % p->out_h);
}

int mlk_pool_loop(int kind, int nhwc, const mlk_conv *p) {
  if (nhwc) return (kind == 0 || kind == 1) && mlk_use_avx512_() ? MLK_POOL_NHWC_ROWS : MLK_POOL_PORTABLE;
  if (kind == 0 && mlk_pool_planes_avx512_ok_(p))
    return p->k_h == 3 && p->k_w == 3 && p->stride_h == 2 && p->stride_w == 2 && p->pad_left == 1 && p->pad_top <= 1 ? MLK_POOL_MAX_3X3S2
                                                                                                                  : MLK_POOL_PLANES;
  if (kind == 1 && p->out_h <= 4096 && p->out_w <= 4096 && mlk_pool_planes_avx512_ok_(p)) return MLK_POOL_PLANES;
  return MLK_POOL_PORTABLE;
}

double mlk_pool_lane_use(int kind, int nhwc, const mlk_conv *p) {
  const int loop = mlk_pool_loop(kind, nhwc, p);
  if (loop != MLK_POOL_PLANES && loop != MLK_POOL_MAX_3X3S2) return 1;
  const int chunks = (p->out_w + 15) / 16;
  const double use = chunks > 0 ? (double)p->out_w / (16.0 * chunks) : 1;
  // Stride 2 in the general loop: each tap of a chunk loads the 32 input columns its 16 outputs
  // span and permutes their even ones together, twice the vectors of stride 1.
  return loop == MLK_POOL_PLANES && p->stride_w == 2 && p->out_w > 1 ? use / 2 : use;
}

void mlk_pool(int kind, int nhwc, int count_include_pad, const mlk_conv *p, const float *x, float *y) {
  const int C = p->in_c;
  const int loop = mlk_pool_loop(kind, nhwc, p);
  if (loop == MLK_POOL_NHWC_ROWS && kind == 0) {
    // Output rows are independent: sharing them among threads cannot change any result.
    pool_job job = {p, x, y};
    mlk_parallel_(p->batch * p->out_h, maxpool_nhwc_task, &job);
    return;
  }
  if (loop == MLK_POOL_NHWC_ROWS) {
    avg_job job = {p, x, y, NULL, NULL, count_include_pad};
    mlk_parallel_(p->batch * p->out_h, avgpool_nhwc_task, &job);
    return;
  }
  if (nhwc && kind == 0) {
    // Max over NHWC: per output pixel, channels contiguous.
    for (int n = 0; n < p->batch; n++)
      for (int oh = 0; oh < p->out_h; oh++)
        for (int ow = 0; ow < p->out_w; ow++) {
          float *dst = y + (((size_t)n * p->out_h + oh) * p->out_w + ow) * C;
          for (int c = 0; c < C; c++) dst[c] = -INFINITY;
          for (int kh = 0; kh < p->k_h; kh++) {
            int ih = oh * p->stride_h - p->pad_top + kh * p->dil_h;
            if (ih < 0 || ih >= p->in_h) continue;
            for (int kw = 0; kw < p->k_w; kw++) {
              int iw = ow * p->stride_w - p->pad_left + kw * p->dil_w;
              if (iw < 0 || iw >= p->in_w) continue;
              max_row(dst, x + (((size_t)n * p->in_h + ih) * p->in_w + iw) * C, C);
            }
          }
        }
    return;
  }
  const size_t in_hw = (size_t)p->in_h * p->in_w, out_hw = (size_t)p->out_h * p->out_w;
  if (!nhwc && kind == 0 && loop != MLK_POOL_PORTABLE) {
    // Planes are independent: sharing them among threads cannot change any result.
    const size_t in_hw = (size_t)p->in_h * p->in_w, planes = (size_t)p->batch * C;
    const size_t per = (size_t)mlk_even_per_((long)planes, in_hw >= 4096 ? 1 : (long)(4096 / in_hw), mlk_threads);
    pool_job job = {p, x, y, per};
    mlk_parallel_((int)((planes + per - 1) / per), maxpool_plane_task, &job);
    return;
  }
  if (!nhwc && kind == 0) {
    // Max over NCHW planes, tap by tap.
    for (int n = 0; n < p->batch; n++)
      for (int c = 0; c < C; c++) {
        const float *plane = x + ((size_t)n * C + c) * in_hw;
        float *dst = y + ((size_t)n * C + c) * out_hw;
        for (size_t i = 0; i < out_hw; i++) dst[i] = -INFINITY;
        pool_taps(p, plane, dst, 1);
      }
    return;
  }
  if (!nhwc && kind == 1 && p->out_h <= 4096 && p->out_w <= 4096) {
    // Average over NCHW planes: sums tap by tap, then one divide; the divisor (taps counted)
    // is a product of a row count and a column count.
    float rows[4096], cols[4096];
    tap_counts(p->out_h, p->k_h, p->stride_h, p->dil_h, p->pad_top, p->pad_bottom, p->in_h, count_include_pad, rows);
    tap_counts(p->out_w, p->k_w, p->stride_w, p->dil_w, p->pad_left, p->pad_right, p->in_w, count_include_pad, cols);
    if (loop == MLK_POOL_PLANES) {
      // Planes are independent: shared among threads, no result changes.
      const size_t planes = (size_t)p->batch * C;
      const size_t per = (size_t)mlk_even_per_((long)planes, in_hw >= 4096 ? 1 : (long)(4096 / in_hw), mlk_threads);
      avg_job job = {p, x, y, rows, cols, count_include_pad, per};
      mlk_parallel_((int)((planes + per - 1) / per), avgpool_plane_task, &job);
      return;
    }
    for (int n = 0; n < p->batch; n++)
      for (int c = 0; c < C; c++) {
        const float *plane = x + ((size_t)n * C + c) * in_hw;
        float *dst = y + ((size_t)n * C + c) * out_hw;
        memset(dst, 0, sizeof(float) * out_hw);
        pool_taps(p, plane, dst, 0);
        for (int oh = 0; oh < p->out_h; oh++)
          for (int ow = 0; ow < p->out_w; ow++) {
            float taps = rows[oh] * cols[ow];
            dst[(size_t)oh * p->out_w + ow] /= taps > 0 ? taps : 1.0f;
          }
      }
    return;
  }
  for (int n = 0; n < p->batch; n++)
    for (int oh = 0; oh < p->out_h; oh++)
      for (int ow = 0; ow < p->out_w; ow++)
        for (int c = 0; c < C; c++) {
          float acc = kind == 0 ? -FLT_MAX : 0.0f;
          int count = 0, taps = 0;
          for (int kh = 0; kh < p->k_h; kh++) {
            int ih = oh * p->stride_h - p->pad_top + kh * p->dil_h;
            for (int kw = 0; kw < p->k_w; kw++) {
              int iw = ow * p->stride_w - p->pad_left + kw * p->dil_w;
              // Taps inside the padded extent count toward the divisor with count_include_pad.
              if (ih < p->in_h + p->pad_bottom && iw < p->in_w + p->pad_right && ih >= -p->pad_top && iw >= -p->pad_left) taps++;
              if (ih < 0 || ih >= p->in_h || iw < 0 || iw >= p->in_w) continue;
              size_t idx = nhwc ? (((size_t)n * p->in_h + ih) * p->in_w + iw) * C + c
                                : (((size_t)n * C + c) * p->in_h + ih) * p->in_w + iw;
              float v = x[idx];
              if (kind == 0) { if (v > acc || isnan(v)) acc = v; }
              else if (kind == 1) acc += v;
              else acc += v * v;
              count++;
            }
          }
          float out;
          if (kind == 0) out = count ? acc : 0.0f;
          else if (kind == 1) out = acc / (float)(count_include_pad ? (taps ? taps : 1) : (count ? count : 1));
          else out = sqrtf(acc);
          size_t o = nhwc ? (((size_t)n * p->out_h + oh) * p->out_w + ow) * C + c
                          : (((size_t)n * C + c) * p->out_h + oh) * p->out_w + ow;
          y[o] = out;
        }
}

// Max pooling of NCHW input into channel-blocked output: 16 planes at a time pooled into scratch
// (16 * out_h * out_w floats, in cache) and interleaved into place.
void mlk_maxpool_blocked(const mlk_conv *p, const float *x, float *y, float *scratch) {
  mlk_conv q = *p;
  q.batch = 1;
  q.in_c = q.out_c = 16;
  const size_t in_hw = (size_t)p->in_h * p->in_w, out_hw = (size_t)p->out_h * p->out_w;
  for (int b = 0; b < p->batch * (p->in_c / 16); b++) {
    mlk_pool(0, 0, 0, &q, x + (size_t)b * 16 * in_hw, scratch);
    mlk_blocked_from_nchw(1, 16, (int)out_hw, scratch, y + (size_t)b * 16 * out_hw);
  }
}
