// Resize (nearest and linear) over NCHW or NHWC images.
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static float source_coord(long o, float scale, long in_len, float out_len, int coord) {
  switch (coord) {
    case 1: return (float)o / scale;                                             // asymmetric
    case 2: return out_len > 1 ? (float)o * (float)(in_len - 1) / (out_len - 1) : 0.0f;  // align_corners
    case 3: return out_len > 1 ? ((float)o + 0.5f) / scale - 0.5f : 0.0f;       // pytorch_half_pixel
    case 4: return ((float)o + 0.5f) / scale;                                   // tf_half_pixel_for_nn
    default: return ((float)o + 0.5f) / scale - 0.5f;                           // half_pixel
  }
}

static long nearest_index(float v, int mode, long len) {
  long i;
  switch (mode) {
    case 1: i = (long)ceilf(v - 0.5f) == (long)(v - 0.5f) && v - floorf(v) == 0.5f ? (long)ceilf(v) : (long)roundf(v); break;
    case 2: i = (long)floorf(v); break;
    case 3: i = (long)ceilf(v); break;
    default: i = (v - floorf(v) == 0.5f) ? (long)floorf(v) : (long)roundf(v); break;
  }
  return i < 0 ? 0 : (i >= len ? len - 1 : i);
}

typedef struct {
  const float *x;
  float *y;
  int nhwc, mode, coord, nearest;
  long n, c, ih, iw, oh, ow;
  float scale_h, scale_w, len_h, len_w;
  const long *cx0, *cx1;
  const float *cdx;
} resize_job;

// Output row yy of image b, channels [c0, c1): every channel of the row in NHWC, the row of one
// plane in NCHW. The arithmetic per element is the same either way.
static void resize_row(const resize_job *j, long b, long yy, long c0, long c1) {
  const long c = j->c, ih = j->ih, iw = j->iw, oh = j->oh, ow = j->ow;
  const long cs = j->nhwc ? 1 : ih * iw, ps = j->nhwc ? c : 1;   // channel stride, pixel stride in x
  const float *xb = j->x + b * c * ih * iw;
  const float sy = source_coord(yy, j->scale_h, ih, j->len_h, j->coord);
  long y0 = 0, y1 = 0;
  float dy = 0;
  if (j->mode == 0) {
    y0 = nearest_index(sy, j->nearest, ih);
  } else {
    float fy = sy < 0 ? 0 : sy;
    y0 = (long)fy;
    if (y0 > ih - 1) y0 = ih - 1;
    y1 = y0 + 1 < ih ? y0 + 1 : ih - 1;
    dy = fy - (float)y0;
    if (dy > 1) dy = 1;
  }
  const float ey = 1 - dy;
  if (j->nhwc) {
    for (long xx = 0; xx < ow; xx++) {
      float *dst = j->y + ((b * oh + yy) * ow + xx) * c;
      if (j->mode == 0) {
        const float *src = xb + (y0 * iw + j->cx0[xx]) * ps;
        for (long ch = 0; ch < c; ch++) dst[ch] = src[ch * cs];
        continue;
      }
      const long x0 = j->cx0[xx], x1 = j->cx1[xx];
      const float dx = j->cdx[xx], ex = 1 - dx;
      const float *p00 = xb + (y0 * iw + x0) * ps, *p01 = xb + (y0 * iw + x1) * ps;
      const float *p10 = xb + (y1 * iw + x0) * ps, *p11 = xb + (y1 * iw + x1) * ps;
      for (long ch = 0; ch < c; ch++)
        dst[ch] = p00[ch] * ey * ex + p01[ch] * ey * dx + p10[ch] * dy * ex + p11[ch] * dy * dx;
    }
    return;
  }
  for (long ch = c0; ch < c1; ch++) {
    float *dst = j->y + ((b * c + ch) * oh + yy) * ow;
    const long o = ch * cs;
    if (j->mode == 0) {
      const float *src = xb + y0 * iw * ps + o;
      for (long xx = 0; xx < ow; xx++) dst[xx] = src[j->cx0[xx] * ps];
      continue;
    }
    for (long xx = 0; xx < ow; xx++) {
      const long x0 = j->cx0[xx], x1 = j->cx1[xx];
      const float dx = j->cdx[xx], ex = 1 - dx;
      const float *p00 = xb + (y0 * iw + x0) * ps, *p01 = xb + (y0 * iw + x1) * ps;
      const float *p10 = xb + (y1 * iw + x0) * ps, *p11 = xb + (y1 * iw + x1) * ps;
      dst[xx] = p00[o] * ey * ex + p01[o] * ey * dx + p10[o] * dy * ex + p11[o] * dy * dx;
    }
  }
}

// NHWC: task t is row t of the n * oh output rows. NCHW: task t is plane t of the n * c output
// planes, row by row (each plane is read and written in order, where a pixel at a time touched
// every plane).
static void resize_task(void *ctx, int t) {
  const resize_job *j = ctx;
  if (j->nhwc) {
    resize_row(j, t / j->oh, t % j->oh, 0, j->c);
    return;
  }
  const long b = t / j->c, ch = t % j->c;
  for (long yy = 0; yy < j->oh; yy++) resize_row(j, b, yy, ch, ch + 1);
}

void mlk_resize(const float *x, float *y, int nhwc, long n, long c, long ih, long iw, long oh, long ow,
                float scale_h, float scale_w, float len_h, float len_w, int mode, int coord, int nearest) {
  // The columns' source positions and weights are the same on every row: worked out once per
  // call (pose_landmark's 128x128x8 -> 256x256x8 spent most of its time on them, per pixel).
  long *cx0 = malloc(sizeof(long) * (size_t)(ow > 0 ? ow : 1) * 2);
  float *cdx = malloc(sizeof(float) * (size_t)(ow > 0 ? ow : 1));
  if (!cx0 || !cdx) { free(cx0); free(cdx); return; }
  long *cx1 = cx0 + ow;
  for (long xx = 0; xx < ow; xx++) {
    float sx = source_coord(xx, scale_w, iw, len_w, coord);
    if (mode == 0) { cx0[xx] = nearest_index(sx, nearest, iw); continue; }
    float fx = sx < 0 ? 0 : sx;
    long x0 = (long)fx;
    if (x0 > iw - 1) x0 = iw - 1;
    float dx = fx - (float)x0;
    cx0[xx] = x0;
    cx1[xx] = x0 + 1 < iw ? x0 + 1 : iw - 1;
    cdx[xx] = dx > 1 ? 1 : dx;
  }
  resize_job job = {x, y, nhwc, mode, coord, nearest, n, c, ih, iw, oh, ow, scale_h, scale_w, len_h, len_w, cx0, cx1, cdx};
  const long tasks = nhwc ? n * oh : n * c;
  // Outputs are independent: sharing them among threads changes no result. Small ones stay on
  // the caller's thread: under about 5 us of work, 16K outputs of a linear resize (four taps
  // each, 0.3-1 ns an output) or 64K of a nearest one (a copy). At 64K for both, linear ones of
  // 0.14 ms ran on one thread.
  const int saved = mlk_threads;
  if (n * c * oh * ow < (mode == 0 ? 65536 : 16384)) mlk_threads = 1;
  mlk_parallel_((int)tasks, resize_task, &job);
  mlk_threads = saved;
  free(cx0);
  free(cdx);
}
