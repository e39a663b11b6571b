// Sparse weights: 1x1 convolutions over NCHW planes whose weights are mostly zero (pruned), as
// compressed rows (CSR: per output channel its nonzero weights and their input channels). Each
// output channel's plane is the sum over its nonzeros of weight x input plane: work in
// proportion to the nonzeros, where the dense GEMM does every product. Summation order per
// output is the nonzeros' order, whatever the partition among threads.
#include "internal.h"

#include <stdlib.h>
#include <string.h>

long mlk_count_nonzero(const float *w, long n) {
  long k = 0;
  for (long i = 0; i < n; i++) k += w[i] != 0.0f;
  return k;
}

// At or below this share of nonzeros the sparse kernel beats the dense GEMM on a pointwise layer:
// it loads inputs for every product where the GEMM reuses them from registers. MobileNetV2 pruned
// to 60% ran at parity with the dense model (Intel Xeon, 1 thread), to 70% 0.86-0.90x its time.
#define MLK_SPARSE_MAX_DENSITY 0.35

int mlk_conv_sparse_ok(const mlk_conv *p, long nonzero) {
  if (p->k_h != 1 || p->k_w != 1 || p->stride_h != 1 || p->stride_w != 1 || p->groups != 1) return 0;
  if (p->pad_top || p->pad_left || p->pad_bottom || p->pad_right) return 0;
  if (p->in_h != p->out_h || p->in_w != p->out_w || p->out_c <= 0 || p->in_c <= 0) return 0;
  return (double)nonzero <= MLK_SPARSE_MAX_DENSITY * (double)p->out_c * (double)p->in_c;
}

void mlk_sparse_pack(int rows, int cols, const float *w, float *values, int *columns, int *starts) {
  long k = 0;
  for (int r = 0; r < rows; r++) {
    starts[r] = (int)k;
    for (int c = 0; c < cols; c++) {
      float v = w[(long)r * cols + c];
      if (v != 0.0f) { values[k] = v; columns[k] = c; k++; }
    }
  }
  starts[rows] = (int)k;
}

#define SPARSE_BLOCK 64   // pixels a task sums at once (four vectors)

size_t mlk_conv_sparse_scratch(const mlk_conv *p) {
  // One block of inputs (all channels x SPARSE_BLOCK pixels) for each thread that may take part.
  return (size_t)p->in_c * SPARSE_BLOCK * (size_t)(mlk_threads + 1);
}

typedef struct {
  const mlk_conv *p;
  const float *x, *values, *bias, *scale, *residual;
  float *scratch;
  const int *columns, *starts;
  float *y;
  mlk_epilogue act;
  long plane;
  int pixel_tasks, per;   // tasks over pixel blocks of `per` per image, times images
} sparse_job;

// Output channels [o0, o1) over pixels [q0, q1) of one image: portable loop.
static void sparse_rows(const sparse_job *j, const float *x, const float *res, float *y, int o0, int o1, long q0, long q1) {
  for (int o = o0; o < o1; o++) {
    float *yo = y + (long)o * j->plane;
    for (long q = q0; q < q1; q++) yo[q] = 0;
    for (int k = j->starts[o]; k < j->starts[o + 1]; k++) {
      const float w = j->values[k], *xi = x + (long)j->columns[k] * j->plane;
      for (long q = q0; q < q1; q++) yo[q] += w * xi[q];
    }
    const float s = j->scale ? j->scale[o] : 1.0f, b = j->bias ? j->bias[o] : 0.0f;
    for (long q = q0; q < q1; q++) {
      float v = yo[q] * s + b;
      if (res) v += res[(long)o * j->plane + q];
      yo[q] = v;
    }
    mlk_activate(yo + q0, (size_t)(q1 - q0), j->act.kind, j->act.lo, j->act.hi);
  }
}

static void sparse_task(void *ctx, int t) {
  const sparse_job *j = ctx;
  const int image = t / j->pixel_tasks, block = t % j->pixel_tasks;
  const long q0 = (long)block * j->per, q1 = q0 + j->per < j->plane ? q0 + j->per : j->plane;
  const long in_image = (long)j->p->in_c * j->plane, out_image = (long)j->p->out_c * j->plane;
  const float *x = j->x + image * in_image, *res = j->residual ? j->residual + image * out_image : NULL;
  float *y = j->y + image * out_image;
  if (mlk_use_avx512_()) {
    // The block's inputs copied side by side (channel after channel, 64 floats each, zeros past
    // the plane's end): every nonzero then reads one contiguous line of L1/L2 instead of a
    // plane's worth of stride apart (a page per channel), and the loads need no masks.
    float *xb = j->scratch + (size_t)mlk_slot * j->p->in_c * SPARSE_BLOCK;
    const long n = q1 - q0;
    for (int c = 0; c < j->p->in_c; c++) {
      memcpy(xb + (long)c * SPARSE_BLOCK, x + (long)c * j->plane + q0, sizeof(float) * n);
      if (n < SPARSE_BLOCK) memset(xb + (long)c * SPARSE_BLOCK + n, 0, sizeof(float) * (SPARSE_BLOCK - n));
    }
    mlk_conv_sparse_block_avx512_(j->p->out_c, j->plane, xb, j->values, j->columns, j->starts, j->bias, j->scale, res, y, q0, q1, j->act);
  } else {
    sparse_rows(j, x, res, y, 0, j->p->out_c, q0, q1);
  }
}

void mlk_conv_sparse(const mlk_conv *p, const float *x, const float *values, const int *columns, const int *starts, const float *bias,
                     const float *scale, const float *residual, float *y, float *scratch, int act, float lo, float hi) {
  sparse_job j = {p, x, values, bias, scale, residual, scratch, columns, starts, y, {act, lo, hi}, (long)p->out_h * p->out_w, 1, 0};
  // Pixel blocks of 64 (one block's inputs, 64 floats of each input channel, stay in L1/L2
  // while every output channel reads them), whole blocks per task whatever the thread count.
  j.per = SPARSE_BLOCK;
  j.pixel_tasks = (int)((j.plane + j.per - 1) / j.per);
  mlk_parallel_(j.pixel_tasks * p->batch, sparse_task, &j);
  if (act == 4) {
    // tanh is not an epilogue of the vector path.
    if (mlk_use_avx512_()) mlk_activate(y, (size_t)p->batch * p->out_c * j.plane, act, lo, hi);
  }
}

// ---- Fully-connected layers with pruned weights ----

int mlk_gemm_sparse_ok(int outputs, int inner, long nonzero) {
  return outputs > 0 && inner > 0 && (double)nonzero <= MLK_SPARSE_MAX_DENSITY * (double)outputs * (double)inner;
}

typedef struct {
  int rows, outputs, inner;
  const float *x, *values;
  const int *columns, *starts;
  float alpha, *y;
} gemv_job;

#define GEMV_SPARSE_ROWS 64   // output units a task sums

// y[r, o] += alpha * (row o of the weights) . x[r, :] for the task's units, every input row.
static void gemv_sparse_task(void *ctx, int t) {
  const gemv_job *j = ctx;
  const int o0 = t * GEMV_SPARSE_ROWS, o1 = o0 + GEMV_SPARSE_ROWS < j->outputs ? o0 + GEMV_SPARSE_ROWS : j->outputs;
  for (int r = 0; r < j->rows; r++) {
    const float *x = j->x + (long)r * j->inner;
    float *y = j->y + (long)r * j->outputs;
    if (mlk_use_avx512_()) {
      mlk_gemv_sparse_avx512_(o0, o1, x, j->values, j->columns, j->starts, j->alpha, y);
      continue;
    }
    for (int o = o0; o < o1; o++) {
      float s = 0;
      for (int k = j->starts[o]; k < j->starts[o + 1]; k++) s += j->values[k] * x[j->columns[k]];
      y[o] += j->alpha * s;
    }
  }
}

void mlk_gemm_sparse(int rows, int outputs, int inner, const float *x, const float *values, const int *columns, const int *starts,
                     float alpha, float *y) {
  gemv_job j = {rows, outputs, inner, x, values, columns, starts, alpha, y};
  mlk_parallel_((outputs + GEMV_SPARSE_ROWS - 1) / GEMV_SPARSE_ROWS, gemv_sparse_task, &j);
}
