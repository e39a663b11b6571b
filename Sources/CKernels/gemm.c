// sgemm for the executor: OpenBLAS (or the AVX-512 matrix-vector product at batch 1) in fixed
// tiles of columns shared among threads.
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// Multiply-adds from which a matrix-vector product is shared among threads: about 16K (64 KB of
// weights, a few microseconds) costs less than waking a thread.
#define GEMV_SPLIT_MACS 16384

typedef struct {
  int trans_a, trans_b, m, n, k, lda, ldb, ldc;
  float alpha, beta;
  const float *a, *b;
  float *c;
  int tile;   // columns of C a task
} gemm_job;

static void gemm_tile(void *ctx, int t) {
  const gemm_job *j = ctx;
  int col = t * j->tile, width = j->n - col < j->tile ? j->n - col : j->tile;
  const float *b = j->trans_b ? j->b + (size_t)col * j->ldb : j->b + col;
  if (j->m == 1) {
    // One row of A (a fully-connected layer at batch 1): a matrix-vector product. sgemm would
    // pack all of B first; sgemv streams it once (MobileNetV2's 1280x1000 classifier 0.56 ->
    // 0.27 ms).
    const int incx = j->trans_a ? j->lda : 1;
    // Rows of B contiguous along k (a fully-connected layer's weights): dot products streamed
    // eight rows at a time (MobileNetV2's 1280x1000 classifier in the model: 0.160 ms with
    // OpenBLAS's sgemv, 0.119 so; onnxruntime 0.116).
    if (j->trans_b && incx == 1 && mlk_use_avx512_()) {
      mlk_gemv_rows_avx512_(width, j->k, b, j->ldb, j->a, j->alpha, j->beta, j->c + col);
      return;
    }
    if (j->trans_b) mlk_cblas_sgemv_(MLK_ROW_MAJOR_, MLK_NO_TRANS_, width, j->k, j->alpha, b, j->ldb, j->a, incx, j->beta, j->c + col, 1);
    else mlk_cblas_sgemv_(MLK_ROW_MAJOR_, MLK_TRANS_, j->k, width, j->alpha, b, j->ldb, j->a, incx, j->beta, j->c + col, 1);
    return;
  }
  mlk_cblas_sgemm_(MLK_ROW_MAJOR_, j->trans_a ? MLK_TRANS_ : MLK_NO_TRANS_, j->trans_b ? MLK_TRANS_ : MLK_NO_TRANS_, j->m, width,
              j->k, j->alpha, j->a, j->lda, b, j->ldb, j->beta, j->c + col, j->ldc);
}

// Rows [t * MLK_TILE, ...) of C.
static void gemm_row_tile(void *ctx, int t) {
  const gemm_job *j = ctx;
  int row = t * MLK_TILE, h = j->m - row < MLK_TILE ? j->m - row : MLK_TILE;
  const float *a = j->trans_a ? j->a + row : j->a + (size_t)row * j->lda;
  mlk_cblas_sgemm_(MLK_ROW_MAJOR_, j->trans_a ? MLK_TRANS_ : MLK_NO_TRANS_, j->trans_b ? MLK_TRANS_ : MLK_NO_TRANS_, h, j->n, j->k,
              j->alpha, a, j->lda, j->b, j->ldb, j->beta, j->c + (size_t)row * j->ldc, j->ldc);
}

void mlk_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
               int ldb, float beta, float *c, int ldc) {
  gemm_job job = {trans_a, trans_b, m, n, k, lda, ldb, ldc, alpha, beta, a, b, c, MLK_TILE};
  if (m == 1 && mlk_threads > 1 && (size_t)n * k >= GEMV_SPLIT_MACS) {
    // A matrix-vector product streams its weights once: tasks of equal rows for the threads (a
    // multiple of 8, the rows the kernel takes at a time; each row's sum is the same whatever the
    // split). In tiles of 256, MobileNetV3's squeeze-excitation layers (960 x 240 weights, 0.9 MB)
    // ran on one thread, and a 1000-unit classifier's four tiles split 768 / 232.
    const int tasks = 2 * mlk_threads;
    job.tile = (n + tasks - 1) / tasks;
    job.tile = (job.tile + 7) / 8 * 8;
    mlk_parallel_((n + job.tile - 1) / job.tile, gemm_tile, &job);
    return;
  }
  if (m > n && m >= 2 * MLK_TILE) {
    // Tall products (a Linear layer over every pixel: ConvNeXt's 3136 x 96 by 96 x 384; NHWC
    // grouped convolutions, pixels by channels) share rows among threads: their columns make
    // one tile or a few uneven ones.
    mlk_parallel_((m + MLK_TILE - 1) / MLK_TILE, gemm_row_tile, &job);
    return;
  }
  int tiles = (n + MLK_TILE - 1) / MLK_TILE;
  if (tiles <= 1 && m != 1) {
    mlk_cblas_sgemm_(MLK_ROW_MAJOR_, trans_a ? MLK_TRANS_ : MLK_NO_TRANS_, trans_b ? MLK_TRANS_ : MLK_NO_TRANS_, m, n, k,
                alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  mlk_parallel_(tiles, gemm_tile, &job);
}

// y[M, N] = x[M, K] * w[N, K]^T in fixed tiles of MLK_TILE rows shared among threads (NHWC
// pointwise convolutions: many pixels, few channels).
void mlk_sgemm_rows_(int m, int n, int k, const float *x, const float *w, float *y) {
  gemm_job job = {0, 1, m, n, k, k, k, n, 1.0f, 0.0f, x, w, y, MLK_TILE};
  mlk_parallel_((m + MLK_TILE - 1) / MLK_TILE, gemm_row_tile, &job);
}
