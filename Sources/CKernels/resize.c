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

void mlk_resize(const float *x, float *y, int nhwc, long n, long c, long ih, long iw, long oh, long ow,
                float scale_h, float scale_w, float len_h, float len_w, int mode, int coord, int nearest) {
  // Per output pixel: the source rows and columns and their weights once, then every channel
  // (contiguous in NHWC, a plane apart in NCHW).
  // The columns' source positions and weights are the same on every row: worked out once per
  // call (pose_landmark's 128x128x8 -> 256x256x8 spent most of its time on them, per pixel).
  const long cs = nhwc ? 1 : ih * iw, ps = nhwc ? c : 1;   // channel stride, pixel stride in x
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
  for (long b = 0; b < n; b++)
    for (long yy = 0; yy < oh; yy++) {
      float sy = source_coord(yy, scale_h, ih, len_h, coord);
      for (long xx = 0; xx < ow; xx++) {
        const float *xb = x + b * c * ih * iw;
        float *dst = nhwc ? y + ((b * oh + yy) * ow + xx) * c : y + (b * c * oh + yy) * ow + xx;
        const long ds = nhwc ? 1 : oh * ow;
        if (mode == 0) {
          const float *src = xb + (nearest_index(sy, nearest, ih) * iw + cx0[xx]) * ps;
          for (long ch = 0; ch < c; ch++) dst[ch * ds] = src[ch * cs];
          continue;
        }
        float fy = sy < 0 ? 0 : sy;
        long y0 = (long)fy;
        if (y0 > ih - 1) y0 = ih - 1;
        const long x0 = cx0[xx], x1 = cx1[xx];
        long y1 = y0 + 1 < ih ? y0 + 1 : ih - 1;
        float dy = fy - (float)y0;
        const float dx = cdx[xx];
        if (dy > 1) dy = 1;
        const float *p00 = xb + (y0 * iw + x0) * ps, *p01 = xb + (y0 * iw + x1) * ps;
        const float *p10 = xb + (y1 * iw + x0) * ps, *p11 = xb + (y1 * iw + x1) * ps;
        const float ey = 1 - dy, ex = 1 - dx;
        if (nhwc) {
          for (long ch = 0; ch < c; ch++)
            dst[ch] = p00[ch] * ey * ex + p01[ch] * ey * dx + p10[ch] * dy * ex + p11[ch] * dy * dx;
        } else {
          for (long ch = 0; ch < c; ch++) {
            const long o = ch * cs;
            dst[ch * ds] = p00[o] * ey * ex + p01[o] * ey * dx + p10[o] * dy * ex + p11[o] * dy * dx;
          }
        }
      }
    }
  free(cx0);
  free(cdx);
}
