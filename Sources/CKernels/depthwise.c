// Depthwise convolution over NCHW planes and NHWC rows.
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// One output channel of a depthwise convolution. 3x3 kernels take a direct path: each output
// row reads three input rows once (interior columns without bounds checks); other kernels
// accumulate tap by tap over the plane.
static void depthwise_channel(const mlk_conv *p, const float *restrict plane, const float *restrict k, float b,
                              float *restrict dst) {
  const int out_hw = p->out_h * p->out_w;
  if (p->k_h == 3 && p->k_w == 3 && p->dil_h == 1 && p->dil_w == 1 && (p->stride_w == 1 || p->stride_w == 2)) {
    const int sw = p->stride_w;
    int ow_lo = 0, ow_hi = p->out_w;
    // Interior columns: all three taps inside the row.
    while (ow_lo < p->out_w && ow_lo * sw - p->pad_left < 0) ow_lo++;
    while (ow_hi > ow_lo && (ow_hi - 1) * sw - p->pad_left + 2 >= p->in_w) ow_hi--;
    for (int oh = 0; oh < p->out_h; oh++) {
      float *d = dst + (size_t)oh * p->out_w;
      const float *rows[3];
      float w[3][3];
      int nrows = 0;
      for (int kh = 0; kh < 3; kh++) {
        int ih = oh * p->stride_h - p->pad_top + kh;
        if (ih < 0 || ih >= p->in_h) continue;
        rows[nrows] = plane + (size_t)ih * p->in_w - p->pad_left;
        w[nrows][0] = k[kh * 3]; w[nrows][1] = k[kh * 3 + 1]; w[nrows][2] = k[kh * 3 + 2];
        nrows++;
      }
      // Edge columns, with bounds checks.
      for (int ow = 0; ow < p->out_w; ow++) {
        if (ow == ow_lo && ow_hi > ow_lo) { ow = ow_hi - 1; continue; }
        float acc = b;
        for (int r = 0; r < nrows; r++)
          for (int kw = 0; kw < 3; kw++) {
            int iw = ow * sw + kw;                      // relative to rows[r] (already shifted by pad_left)
            int real = iw - p->pad_left;
            if (real >= 0 && real < p->in_w) acc += rows[r][iw] * w[r][kw];
          }
        d[ow] = acc;
      }
      if (ow_hi <= ow_lo) continue;
      for (int ow = ow_lo; ow < ow_hi; ow++) d[ow] = b;
      for (int r = 0; r < nrows; r++) {
        const float *restrict src = rows[r];
        const float w0 = w[r][0], w1 = w[r][1], w2 = w[r][2];
        if (sw == 1) {
          for (int ow = ow_lo; ow < ow_hi; ow++) d[ow] += src[ow] * w0 + src[ow + 1] * w1 + src[ow + 2] * w2;
        } else {
          for (int ow = ow_lo; ow < ow_hi; ow++) d[ow] += src[2 * ow] * w0 + src[2 * ow + 1] * w1 + src[2 * ow + 2] * w2;
        }
      }
    }
    return;
  }
  for (int i = 0; i < out_hw; i++) dst[i] = b;
  for (int kh = 0; kh < p->k_h; kh++) {
    int oh_lo, oh_hi;
    valid_range(p->out_h, p->in_h, p->stride_h, p->pad_top, kh * p->dil_h, &oh_lo, &oh_hi);
    for (int kw = 0; kw < p->k_w; kw++) {
      int ow_lo, ow_hi;
      valid_range(p->out_w, p->in_w, p->stride_w, p->pad_left, kw * p->dil_w, &ow_lo, &ow_hi);
      const float kv = k[kh * p->k_w + kw];
      for (int oh = oh_lo; oh < oh_hi; oh++) {
        const float *src = plane + (size_t)(oh * p->stride_h - p->pad_top + kh * p->dil_h) * p->in_w - p->pad_left + kw * p->dil_w;
        float *d = dst + (size_t)oh * p->out_w;
        if (p->stride_w == 1) {
          for (int ow = ow_lo; ow < ow_hi; ow++) d[ow] += kv * src[ow];
        } else {
          const int s = p->stride_w;
          for (int ow = ow_lo; ow < ow_hi; ow++) d[ow] += kv * src[ow * s];
        }
      }
    }
  }
}

typedef struct {
  const mlk_conv *p;
  const float *x, *w, *bias;
  float *y;
  int vector, block;   // block: channels per task
  const mlk_dw_flat *flat;
  mlk_epilogue act;
} dw_job;

static void depthwise_task(void *ctx, int t) {
  const dw_job *j = ctx;
  const mlk_conv *p = j->p;
  const int blocks = (p->out_c + j->block - 1) / j->block, n = t / blocks;
  const int o0 = t % blocks * j->block, o1 = o0 + j->block < p->out_c ? o0 + j->block : p->out_c;
  if (j->vector) {
    mlk_depthwise_planes_avx512_(p, j->x, j->w, j->bias, j->y, n, o0, o1, j->flat, j->act);
    return;
  }
  const int mult = p->out_c / p->in_c, in_hw = p->in_h * p->in_w, out_hw = p->out_h * p->out_w;
  for (int o = o0; o < o1; o++) {
    const float *plane = j->x + ((size_t)n * p->in_c + o / mult) * in_hw, *k = j->w + (size_t)o * p->k_h * p->k_w;
    float b = j->bias ? j->bias[o] : 0.0f, *dst = j->y + ((size_t)n * p->out_c + o) * out_hw;
    depthwise_channel(p, plane, k, b, dst);
    mlk_activate(dst, (size_t)out_hw, j->act.kind, j->act.lo, j->act.hi);
  }
}

// Whether a depthwise layer is shared among threads: by its multiply-adds, not its outputs (a
// 7x7 window costs five times a 3x3 one per output). Under about 5 us of work (16K outputs of a
// 3x3 window) waking a thread costs more than it saves; above, the calibration networks' layers
// ran 1.7-2.1x faster on 2 threads. The outputs' count alone (65536) had kept layers of up to
// 0.19 ms (7x7 over 512 channels of 7x7) on one thread.
int mlk_depthwise_splits_(const mlk_conv *p) {
  return mlk_threads > 1 && (size_t)p->batch * p->out_h * p->out_w * p->out_c * p->k_h * p->k_w >= 147456;
}

void mlk_depthwise_nchw(const mlk_conv *p, const float *x, const float *w, const float *bias, float *y, int act, float lo,
                        float hi) {
  // Channels are independent: sharing them among threads cannot change any result. A task
  // takes a block of channels of at least 4096 outputs (per-task setup is paid once per block).
  const int vector = mlk_use_avx512_() && mlk_depthwise_avx512_ok_(p);
  const size_t out_hw = (size_t)p->out_h * p->out_w;
  int block = out_hw >= 4096 ? 1 : (int)(4096 / (out_hw ? out_hw : 1));
  if (block > p->out_c) block = p->out_c;
  static _Thread_local mlk_dw_flat flat;   // 13 KB: kept off the caller's stack
  const int use_flat = vector && mlk_depthwise_flat_setup_(p, &flat);
  dw_job job = {p, x, w, bias, y, vector, block, use_flat ? &flat : NULL, {act, lo, hi}};
  int saved = mlk_threads;
  if (!mlk_depthwise_splits_(p)) mlk_threads = 1;
  else if (block > 1 && (size_t)p->batch * ((p->out_c + block - 1) / block) < 2 * (size_t)mlk_threads) {
    // Blocks for two tasks a thread at least (a 7x7 depthwise over 512 channels of 4x4 is
    // 0.19 ms of work in one block of 256 channels otherwise).
    const int per = (int)(((size_t)p->batch * p->out_c + 2 * mlk_threads - 1) / (2 * mlk_threads));
    job.block = block = per < 1 ? 1 : per;
  } else if (mlk_threads > 1 && p->batch == 1) {
    // A multiple of the threads where the blocks are few (576 channels of 7x7: 7 blocks of 83).
    job.block = block = (int)mlk_even_per_(p->out_c, block, mlk_threads);
  }
  mlk_parallel_(p->batch * ((p->out_c + block - 1) / block), depthwise_task, &job);
  mlk_threads = saved;
  if (vector && act == 4) mlk_activate(y, (size_t)p->batch * p->out_c * out_hw, act, lo, hi);
}

static inline void dw_row(float *restrict dst, const float *restrict src, const float *restrict k, int n) {
  for (int o = 0; o < n; o++) dst[o] += src[o] * k[o];
}

typedef struct { const mlk_conv *p; const float *x, *w, *bias; float *y; int vector; mlk_epilogue act; } dwh_job;

// One output row of an NHWC depthwise convolution.
static void depthwise_nhwc_row(void *ctx, int t) {
  const dwh_job *j = ctx;
  const mlk_conv *p = j->p;
  const int mult = p->out_c / p->in_c;
  int n = t / p->out_h, oh = t % p->out_h;
  const float *xn = j->x + (size_t)n * p->in_h * p->in_w * p->in_c;
  float *yn = j->y + (size_t)n * p->out_h * p->out_w * p->out_c;
  if (j->vector == 2) {
    mlk_depthwise_nhwc_row_flat_avx512_(p, xn, j->w, j->bias, yn, oh, j->act);
    return;
  }
  if (j->vector) {
    mlk_depthwise_nhwc_row_avx512_(p, xn, j->w, j->bias, yn, oh, j->act);
    return;
  }
  for (int ow = 0; ow < p->out_w; ow++) {
    float *dst = yn + ((size_t)oh * p->out_w + ow) * p->out_c;
    for (int o = 0; o < p->out_c; o++) dst[o] = j->bias ? j->bias[o] : 0.0f;
    for (int kh = 0; kh < p->k_h; kh++) {
      int ih = oh * p->stride_h - p->pad_top + kh * p->dil_h;
      if (ih < 0 || ih >= p->in_h) continue;
      for (int kw = 0; kw < p->k_w; kw++) {
        int iw = ow * p->stride_w - p->pad_left + kw * p->dil_w;
        if (iw < 0 || iw >= p->in_w) continue;
        const float *src = xn + ((size_t)ih * p->in_w + iw) * p->in_c;
        const float *k = j->w + ((size_t)kh * p->k_w + kw) * p->out_c;
        if (mult == 1) {
          dw_row(dst, src, k, p->out_c);   // contiguous channels: vectorised
        } else {
          for (int o = 0; o < p->out_c; o++) dst[o] += src[o / mult] * k[o];
        }
      }
    }
  }
  mlk_activate(yn + (size_t)oh * p->out_w * p->out_c, (size_t)p->out_w * p->out_c, j->act.kind, j->act.lo, j->act.hi);
}

void mlk_depthwise_nhwc(const mlk_conv *p, const float *x, const float *w, const float *bias, float *y, int act, float lo,
                        float hi) {
  // Output rows are independent: sharing them among threads cannot change any result.
  const int vector = !mlk_use_avx512_() || p->out_c != p->in_c ? 0 : (mlk_depthwise_nhwc_flat_ok_(p) ? 2 : 1);
  dwh_job job = {p, x, w, bias, y, vector, {act, lo, hi}};
  int saved = mlk_threads;
  if (!mlk_depthwise_splits_(p)) mlk_threads = 1;
  mlk_parallel_(p->batch * p->out_h, depthwise_nhwc_row, &job);
  mlk_threads = saved;
  if (vector && act == 4) mlk_activate(y, (size_t)p->batch * p->out_h * p->out_w * p->out_c, act, lo, hi);
}
