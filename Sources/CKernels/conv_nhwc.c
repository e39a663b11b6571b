// NHWC convolution: im2col by rows into the GEMM, and the narrow-output and 1x1 row kernels.
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// im2col over NHWC data for group gi: rows (oh, ow), columns (kh, kw, c), matching OHWI weights.
// Where a window row lies inside the image, undilated and with all channels, its k_w taps are
// k_w * C contiguous floats in both the input and the im2col row: one copy (palm_detection's stem,
// 5x5 stride 2 over 3 channels: 15 floats a copy instead of five memcpy calls of 3; harness, 1
// thread: the convolution 0.90 -> 0.46 ms, im2col and memcpy had been two thirds of it; 16->32
// 3x3 on 112x112 0.91 -> 0.73; 64 channels and up even).
static void im2col_nhwc_rows(const mlk_conv *p, const float *xn, float *cols, int gi, int oh0, int oh1) {
  const int cin_g = p->in_c / p->groups, kk = p->k_h * p->k_w * cin_g;
  const int span = p->k_w * cin_g, whole = p->dil_w == 1 && cin_g == p->in_c;
  for (int oh = oh0; oh < oh1; oh++)
    for (int ow = 0; ow < p->out_w; ow++) {
      float *row = cols + ((size_t)oh * p->out_w + ow) * kk;
      const int iw0 = ow * p->stride_w - p->pad_left;
      const int inside = whole && iw0 >= 0 && iw0 + p->k_w <= p->in_w;
      for (int kh = 0; kh < p->k_h; kh++) {
        int ih = oh * p->stride_h - p->pad_top + kh * p->dil_h;
        if (inside && ih >= 0 && ih < p->in_h) {
          const float *src = xn + ((size_t)ih * p->in_w + iw0) * p->in_c;
          float *dst = row + (size_t)kh * span;
          if (span <= 64)
            for (int i = 0; i < span; i++) dst[i] = src[i];
          else
            memcpy(dst, src, sizeof(float) * (size_t)span);
          continue;
        }
        for (int kw = 0; kw < p->k_w; kw++) {
          int iw = ow * p->stride_w - p->pad_left + kw * p->dil_w;
          float *dst = row + ((size_t)kh * p->k_w + kw) * cin_g;
          if (ih < 0 || ih >= p->in_h || iw < 0 || iw >= p->in_w) { memset(dst, 0, sizeof(float) * (size_t)cin_g); continue; }
          memcpy(dst, xn + ((size_t)ih * p->in_w + iw) * p->in_c + (size_t)gi * cin_g, sizeof(float) * (size_t)cin_g);
        }
      }
    }
}

static void im2col_nhwc(const mlk_conv *p, const float *xn, float *cols, int gi) {
  im2col_nhwc_rows(p, xn, cols, gi, 0, p->out_h);
}

typedef struct { const mlk_conv *p; const float *xn; float *cols; } im2col_job;

static void im2col_task(void *ctx, int t) {
  const im2col_job *j = ctx;
  const int oh1 = (t + 1) * 4 < j->p->out_h ? (t + 1) * 4 : j->p->out_h;
  im2col_nhwc_rows(j->p, j->xn, j->cols, 0, t * 4, oh1);
}

// The im2col rows of one group-1 convolution, four output rows a task: a copy, so sharing it
// among threads changes nothing (alone on one thread, it held back 2-thread runs of stems such as
// hand_landmark's 3 -> 24 channels at 112 x 112).
static void im2col_nhwc_parallel(const mlk_conv *p, const float *xn, float *cols) {
  im2col_job job = {p, xn, cols};
  if ((size_t)p->out_h * p->out_w * p->k_h * p->k_w * p->in_c < 65536) {
    im2col_nhwc(p, xn, cols, 0);
    return;
  }
  mlk_parallel_((p->out_h + 3) / 4, im2col_task, &job);
}

size_t mlk_conv_nhwc_scratch(const mlk_conv *p) {
  const size_t kk = (size_t)p->k_h * p->k_w * (p->in_c / p->groups);
  const size_t panels = kk * (size_t)((p->out_c / p->groups + 31) / 32 * 32);
  if (mlk_use_avx512_() && mlk_conv_nhwc_direct_ok_(p)) return panels;   // (packed here when not at plan time)
  if (p->out_c < 16 && p->groups == 1 && mlk_use_avx512_()) return (kk * MLK_TILE + 16 * MLK_TILE) * (size_t)(mlk_threads + 1);   // per-thread tiles
  return (size_t)p->out_h * p->out_w * kk + panels;
}

// NHWC convolutions with fewer than 16 output channels (segmentation and detection heads): the
// usual form would fill 32-wide vectors with a handful of channels. Instead Y^T = W * cols^T: the
// output channels are the GEMM's rows and 256 pixels its columns. Each task transposes its
// pixels' im2col rows into panels, multiplies, and writes the [O x 256] tile back pixel-major.
typedef struct {
  const mlk_conv *p;
  const float *x, *w, *bias;   // x: the image's NHWC input
  float *y, *scratch;
  int rows, kk;
  mlk_epilogue act;
} narrow_job;

typedef struct {
  const mlk_conv *p;
  const float *x, *w, *bias;
  float *y;
  mlk_epilogue act;
} single_job;

static void single_row_task(void *ctx, int oh) {
  const single_job *j = ctx;
  mlk_conv_nhwc_row_single_avx512_(j->p, j->x, j->w, j->bias, j->y, oh, j->act);
}


static void direct_row_task(void *ctx, int oh) {
  const single_job *j = ctx;   // (w: the weight panels)
  mlk_conv_nhwc_direct_row_avx512_(j->p, j->x, j->w, j->bias, j->y, oh, j->act);
}

static void small1x1_task(void *ctx, int t) {
  const single_job *j = ctx;
  const long total = (long)j->p->out_h * j->p->out_w, px0 = (long)t * 4096;
  mlk_conv1x1_nhwc_small_avx512_(j->p, j->x, j->w, j->bias, j->y, px0, total - px0 < 4096 ? total - px0 : 4096, j->act);
}

static void narrow_task(void *ctx, int t) {
  const narrow_job *j = ctx;
  const int o = j->p->out_c, kk = j->kk;
  const int p0 = t * MLK_TILE, width = j->rows - p0 < MLK_TILE ? j->rows - p0 : MLK_TILE;
  float *panels = j->scratch + (size_t)mlk_slot * ((size_t)kk * MLK_TILE + 16 * MLK_TILE);
  float *tile = panels + (size_t)kk * MLK_TILE;
  const int npanels = (width + 31) / 32;
  const mlk_conv *p = j->p;
  const int cin = p->in_c;
  // Each pixel's im2col row (kh, kw, c), gathered straight from the input into its panel lane.
  for (int jp = 0; jp < npanels; jp++)
    for (int i = 0; i < 32; i++) {
      const int px = jp * 32 + i;
      float *dst = panels + (size_t)jp * kk * 32 + i;
      if (px >= width) {
        for (int k = 0; k < kk; k++) dst[(size_t)k * 32] = 0.0f;
        continue;
      }
      const int oh = (p0 + px) / p->out_w, ow = (p0 + px) % p->out_w;
      for (int kh = 0, k = 0; kh < p->k_h; kh++) {
        const int ih = oh * p->stride_h - p->pad_top + kh * p->dil_h;
        for (int kw = 0; kw < p->k_w; kw++, k += cin) {
          const int iw = ow * p->stride_w - p->pad_left + kw * p->dil_w;
          if (ih < 0 || ih >= p->in_h || iw < 0 || iw >= p->in_w) {
            for (int c = 0; c < cin; c++) dst[(size_t)(k + c) * 32] = 0.0f;
          } else {
            const float *src = j->x + ((size_t)ih * p->in_w + iw) * cin;
            for (int c = 0; c < cin; c++) dst[(size_t)(k + c) * 32] = src[c];
          }
        }
      }
    }
  mlk_gemm_packed_avx512_(o, width, kk, j->w, kk, panels, tile, MLK_TILE, j->bias, NULL, NULL, NULL, j->act, 0, 1);
  for (int px = 0; px < width; px++)
    for (int c = 0; c < o; c++) j->y[(size_t)(p0 + px) * o + c] = tile[(size_t)c * MLK_TILE + px];
}

typedef struct {
  const float *a;
  long lda;
  const float *panels, *bias, *res;   // res: laid out like y, or NULL
  float *y;
  int rows, o, kk, cols, col_tasks, row_step, short_k;
  mlk_epilogue act;
} nhwc_job;

#define NHWC_ROWS 96   // output pixels per task (a multiple of the GEMM's 12-row tile)
#define NHWC_COLS 64   // output channels per task where the weights are large (a multiple of the 32-channel panels)
#define NHWC_WEIGHTS_WHOLE (256 << 10)   // weight bytes above which tasks take NHWC_COLS channels each

// Rows [r0, r0 + 96) by channels [c0, c0 + cols): the GEMM streams its weight panels once per
// 12 rows, so a task keeps its share of them small enough to stay in L2. With all channels in
// one task, a 7x7 layer of 192 -> 1152 channels (884 KB of weights) read them five times from
// L3 (0.27-0.32 ms in hand_landmark_full where they take 0.15 from L2) and left a second thread
// nothing to do (49 pixels: one task).
static void nhwc_task(void *ctx, int t) {
  const nhwc_job *j = ctx;
  const int rt = t / j->col_tasks, ct = t % j->col_tasks;
  const int r0 = rt * j->row_step, rows = j->rows - r0 < j->row_step ? j->rows - r0 : j->row_step;
  const int c0 = ct * j->cols, cols = j->o - c0 < j->cols ? j->o - c0 : j->cols;
  if (j->short_k) {
    mlk_gemm_short_avx512_(rows, cols, j->kk, j->a + (size_t)r0 * j->lda, j->lda, j->panels + (size_t)c0 * j->kk,
                           j->bias ? j->bias + c0 : NULL, j->res ? j->res + (size_t)r0 * j->o + c0 : NULL,
                           j->y + (size_t)r0 * j->o + c0, j->o, j->act);
    return;
  }
  mlk_gemm_packed_avx512_(rows, cols, j->kk, j->a + (size_t)r0 * j->lda, j->lda, j->panels + (size_t)c0 * j->kk,
                          j->y + (size_t)r0 * j->o + c0, j->o, NULL, j->bias ? j->bias + c0 : NULL, NULL,
                          j->res ? j->res + (size_t)r0 * j->o + c0 : NULL, j->act, 0, 1);
}

// One output pixel per image with many output channels (face_landmark's 3x3 convolution of a
// 3x3x32 input into 1404 values): a matrix-vector product, which reads the OHWI weights as they
// are, row by row. Through the packed GEMM (one row of twelve used) it streamed 1.6 MB of panels
// at 5.5 GB/s.
static int one_pixel(const mlk_conv *p) { return p->groups == 1 && p->out_h * p->out_w == 1 && (p->out_c >= 64 || p->out_c < 16); }

int mlk_conv_nhwc_packs(const mlk_conv *p) {
  return p->groups == 1 && p->out_c >= 16 && mlk_use_avx512_() && !mlk_conv1x1_nhwc_small_ok_(p) && !mlk_conv_nhwc_single_ok_(p) &&
         !one_pixel(p);
}

int mlk_conv_nhwc_runs_direct(const mlk_conv *p) { return mlk_use_avx512_() && mlk_conv_nhwc_direct_ok_(p); }

int mlk_conv_nhwc_runs_gemv(const mlk_conv *p) { return one_pixel(p); }

int mlk_conv_nhwc_short_sums(const mlk_conv *p) {
  return mlk_conv_nhwc_packs(p) && !mlk_conv_nhwc_direct_ok_(p) && mlk_gemm_short_ok_(p->k_h * p->k_w * p->in_c);
}

static void conv_nhwc(const mlk_conv *p, const float *x, const float *w, const float *packed, const float *bias, const float *res,
                      float *y, float *scratch, int act, float lo, float hi) {
  if (res && !(mlk_conv_nhwc_packs(p) && !mlk_conv_nhwc_direct_ok_(p))) {
    // Off the packed GEMM (whose stores add the residual): the sums, then the residual, then
    // the activation, each over the whole output.
    conv_nhwc(p, x, w, packed, bias, NULL, y, scratch, 0, 0, 0);
    const size_t n = (size_t)p->batch * p->out_h * p->out_w * p->out_c;
    const long shape[1] = {(long)n}, unit[1] = {1};
    mlk_binary(MLK_ADD, 1, shape, y, unit, res, unit, y);
    mlk_activate(y, n, act, lo, hi);
    return;
  }
  const int g = p->groups, cin_g = p->in_c / g, cout_g = p->out_c / g;
  const int out_hw = p->out_h * p->out_w;
  const int kk = p->k_h * p->k_w * cin_g;
  const int plain = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 &&
                    p->pad_left == 0 && p->out_h == p->in_h && p->out_w == p->in_w;
  if (one_pixel(p) && !packed) {
    for (int n = 0; n < p->batch; n++) {
      const float *xn = x + (size_t)n * p->in_h * p->in_w * p->in_c;
      float *yn = y + (size_t)n * p->out_c;
      im2col_nhwc(p, xn, scratch, 0);
      mlk_sgemm(0, 1, 1, p->out_c, kk, 1.0f, scratch, kk, w, kk, 0.0f, yn, p->out_c);
      if (bias)
        for (int o = 0; o < p->out_c; o++) yn[o] += bias[o];
    }
    mlk_activate(y, (size_t)p->batch * p->out_c, act, lo, hi);
    return;
  }
  if (g == 1 && mlk_use_avx512_()) {
    // y[HW, O] = cols[HW, KK] * W^T: the OHWI weights as 32-channel panels (a transposing copy,
    // weights-sized: made here on each call unless the caller packed them once), the bias and
    // activation applied on store. In the Keras MobileNetV2 the copies took a fifth of the run.
    const float *panels = packed;
    if (!panels && (p->out_c >= 16 || mlk_conv_nhwc_direct_ok_(p))) {   // (the narrow path below packs nothing)
      float *own = scratch + (plain || mlk_conv_nhwc_direct_ok_(p) ? 0 : (size_t)out_hw * kk);
      mlk_weight_panels_pack(p->out_c, kk, w, own);
      panels = own;
    }
    for (int n = 0; n < p->batch; n++) {
      const float *xn = x + (size_t)n * p->in_h * p->in_w * p->in_c;
      if (mlk_conv1x1_nhwc_small_ok_(p)) {
        single_job job = {p, xn, w, bias, y + (size_t)n * out_hw * p->out_c, {act, lo, hi}};
        mlk_parallel_((out_hw + 4095) / 4096, small1x1_task, &job);
        continue;
      }
      if (mlk_conv_nhwc_single_ok_(p)) {
        single_job job = {p, xn, w, bias, y + (size_t)n * out_hw, {act, lo, hi}};
        mlk_parallel_(p->out_h, single_row_task, &job);
        continue;
      }
      if (mlk_conv_nhwc_direct_ok_(p)) {
        single_job job = {p, xn, panels, bias, y + (size_t)n * out_hw * p->out_c, {act, lo, hi}};
        mlk_parallel_(p->out_h, direct_row_task, &job);
        continue;
      }
      if (p->out_c < 16) {
        narrow_job job = {p, xn, w, bias, y + (size_t)n * out_hw * p->out_c, scratch, out_hw, kk, {act, lo, hi}};
        mlk_parallel_((out_hw + MLK_TILE - 1) / MLK_TILE, narrow_task, &job);
        continue;
      }
      const float *a = xn;
      if (!plain) {
        im2col_nhwc_parallel(p, xn, scratch);
        a = scratch;
      }
      const int cols = (size_t)p->out_c * kk * sizeof(float) > NHWC_WEIGHTS_WHOLE ? NHWC_COLS : p->out_c;
      const int col_tasks = (p->out_c + cols - 1) / cols;
      // Few tasks that the threads cannot share evenly (a 7x7 layer to 160 channels: one task of
      // rows by 64, 64 and 32 channels; the second thread took two of the three) are cut by rows
      // too, into equal parts: each pixel's sums stay those of one task's GEMM.
      int row_tasks = (out_hw + NHWC_ROWS - 1) / NHWC_ROWS;
      const int parts = mlk_even_chunks_(col_tasks, row_tasks, out_hw < NHWC_ROWS ? out_hw / 12 : row_tasks, mlk_threads);
      const int row_step = parts == row_tasks ? NHWC_ROWS : (out_hw + parts - 1) / parts;
      row_tasks = (out_hw + row_step - 1) / row_step;
      nhwc_job job = {a, kk, panels, bias, res ? res + (size_t)n * out_hw * p->out_c : NULL, y + (size_t)n * out_hw * p->out_c,
                      out_hw, p->out_c, kk, cols, col_tasks, row_step, mlk_gemm_short_ok_(kk), {act, lo, hi}};
      mlk_parallel_(row_tasks * col_tasks, nhwc_task, &job);
    }
    if (act == 4) mlk_activate(y, (size_t)p->batch * out_hw * p->out_c, act, lo, hi);
    return;
  }
  if (g == 1 && plain) {
    // 1x1: the NHWC input already is the [HW, C] matrix; y[HW, O] = x[HW, C] * W[O, C]^T.
    for (int n = 0; n < p->batch; n++) {
      float *yn = y + (size_t)n * out_hw * p->out_c;
      mlk_sgemm_rows_(out_hw, p->out_c, p->in_c, x + (size_t)n * out_hw * p->in_c, w, yn);
      if (bias)
        for (int i = 0; i < out_hw; i++)
          for (int o = 0; o < p->out_c; o++) yn[(size_t)i * p->out_c + o] += bias[o];
    }
    mlk_activate(y, (size_t)p->batch * out_hw * p->out_c, act, lo, hi);
    return;
  }
  for (int n = 0; n < p->batch; n++) {
    const float *xn = x + (size_t)n * p->in_h * p->in_w * p->in_c;
    float *yn = y + (size_t)n * out_hw * p->out_c;
    for (int gi = 0; gi < g; gi++) {
      im2col_nhwc(p, xn, scratch, gi);
      // y[hw, o] = cols[hw, kk] * W[o, kk]^T, written into the group's channel slice.
      mlk_sgemm(0, 1, out_hw, cout_g, kk, 1.0f, scratch, kk, w + (size_t)gi * cout_g * kk, kk, 0.0f,
                yn + (size_t)gi * cout_g, p->out_c);
    }
    if (bias)
      for (int i = 0; i < out_hw; i++)
        for (int o = 0; o < p->out_c; o++) yn[(size_t)i * p->out_c + o] += bias[o];
  }
  mlk_activate(y, (size_t)p->batch * out_hw * p->out_c, act, lo, hi);
}

void mlk_conv_nhwc(const mlk_conv *p, const float *x, const float *w, const float *bias, const float *res, float *y, float *scratch,
                   int act, float lo, float hi) {
  conv_nhwc(p, x, w, NULL, bias, res, y, scratch, act, lo, hi);
}

void mlk_conv_nhwc_packed(const mlk_conv *p, const float *x, const float *panels, const float *bias, const float *res, float *y,
                          float *scratch, int act, float lo, float hi) {
  conv_nhwc(p, x, NULL, panels, bias, res, y, scratch, act, lo, hi);
}
