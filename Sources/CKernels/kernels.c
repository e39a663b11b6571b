// Kernels for the executor: convolution (im2col + OpenBLAS sgemm, direct depthwise),
// pooling, fused activations. Layout-specific loops are kept simple and cache-friendly;
// the heavy lifting of standard convolutions is sgemm.
#include "internal.h"

#include <float.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

enum { MLK_ROW_MAJOR_ = 101, MLK_NO_TRANS_ = 111, MLK_TRANS_ = 112 };
extern void cblas_sgemm(int order, int transa, int transb, int m, int n, int k, float alpha, const float *a, int lda,
                        const float *b, int ldb, float beta, float *c, int ldc);
extern void cblas_sgemv(int order, int trans, int m, int n, float alpha, const float *a, int lda, const float *x, int incx,
                        float beta, float *y, int incy);
extern void openblas_set_num_threads(int n);

// Threads: OpenBLAS always runs on one thread (its threaded paths change the order of the
// sums, so results would depend on the thread count). Parallelism is ours instead: C is cut
// into tiles of MLK_TILE columns — the same tiles whatever the thread count — and the tiles
// are shared out among threads, so every element is computed by the same call.
#include <pthread.h>
#define MLK_TILE 256
#define MLK_TILE_WIDE 2048   // output columns per tile of the direct path's single-block GEMMs (see conv_nchw_direct)
#define MLK_WIDE_B_BYTES (512 << 10)   // the most of B one such tile spans (see conv_nchw_direct)
#define PF_ROWS 4         // input rows ahead a 1x1 convolution's packing requests
#define MLK_KBLOCK 256   // im2col rows built at a time by the AVX-512 convolution path
static int mlk_threads = 1;

// OpenBLAS runs on one thread (parallelism is ours, in fixed tiles), from the start. The pthread
// build starts its server threads when it loads, and they spin in sched_yield for their first
// 0.1-0.2 s: during the warm-up and first timed runs of a `profile`, on the other vCPU. Timed
// runs of MobileNetV2 then took 7.5-8 ms instead of 5.3-6 in about half of the processes. Its
// threads are stopped here (blas_thread_shutdown_, where the library has it: weak, so other
// OpenBLAS builds link too); single-threaded calls never start them again.
extern int blas_thread_shutdown_(void) __attribute__((weak));
__attribute__((constructor)) static void mlk_openblas_single_thread(void) {
  openblas_set_num_threads(1);
  if (blas_thread_shutdown_) blas_thread_shutdown_();
}

void mlk_set_threads(int threads) {
  // (OpenBLAS stays at the one thread the constructor above set: setting it again restarts its
  // server threads, which then spin.)
  mlk_threads = threads < 1 ? 1 : (threads > 16 ? 16 : threads);
}

// A persistent pool: workers wait (spin, then sleep on a condition variable) between parallel
// sections.
// mlk_parallel(tasks, fn, ctx) runs fn(ctx, t) for every t; which thread runs a task does not
// matter, because tasks are independent and each computes a fixed piece of the output.
static __thread int mlk_slot = 0;        // scratch slot of this thread in a parallel section
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER, pool_done = PTHREAD_COND_INITIALIZER;
static int pool_size = 0;               // worker threads started (excluding the caller)
static long pool_generation = 0;
static int pool_active = 0;             // workers taking part in the current section
static int pool_pending = 0;            // workers not yet finished
static int pool_tasks = 0, pool_next = 0;
static mlk_task_fn pool_fn = NULL;
static void *pool_ctx = NULL;
static pthread_mutex_t section_lock = PTHREAD_MUTEX_INITIALIZER;

static void pool_drain(void) {
  // Tasks are handed out by an atomic counter (a lock per task costs more than small tasks take).
  for (;;) {
    int t = __atomic_fetch_add(&pool_next, 1, __ATOMIC_ACQ_REL);
    if (t >= pool_tasks) return;
    pool_fn(pool_ctx, t);
  }
}

// Before sleeping, a worker (and a caller waiting for its workers) spins a while: sections come
// in quick succession (one or more per layer), and waking a sleeping thread takes tens of
// microseconds on a virtual machine, which small layers would pay on every section.
#define MLK_SPIN 16384
static inline void spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static void *pool_worker(void *arg) {
  long index = (long)arg;
  long seen = 0;
  mlk_slot = (int)index + 1;
  for (;;) {
    for (int i = 0; i < MLK_SPIN && __atomic_load_n(&pool_generation, __ATOMIC_ACQUIRE) == seen; i++) spin_pause();
    pthread_mutex_lock(&pool_lock);
    while (pool_generation == seen || index >= pool_active) {
      if (pool_generation != seen) seen = pool_generation;   // a section this worker sits out
      pthread_cond_wait(&pool_wake, &pool_lock);
    }
    seen = pool_generation;
    pthread_mutex_unlock(&pool_lock);
    pool_drain();
    pthread_mutex_lock(&pool_lock);
    if (__atomic_sub_fetch(&pool_pending, 1, __ATOMIC_RELEASE) == 0) pthread_cond_signal(&pool_done);
    pthread_mutex_unlock(&pool_lock);
  }
  return NULL;
}

static void mlk_parallel(int tasks, mlk_task_fn fn, void *ctx);
int mlk_thread_count_(void) { return mlk_threads; }
int mlk_thread_slot_(void) { return mlk_slot; }
void mlk_parallel_(int tasks, mlk_task_fn fn, void *ctx) { mlk_parallel(tasks, fn, ctx); }

static void mlk_parallel(int tasks, mlk_task_fn fn, void *ctx) {
  mlk_slot = 0;   // whoever calls is the section's caller
  int helpers = (mlk_threads < tasks ? mlk_threads : tasks) - 1;
  if (helpers <= 0) {
    for (int t = 0; t < tasks; t++) fn(ctx, t);
    return;
  }
  pthread_mutex_lock(&section_lock);   // one parallel section at a time
  pthread_mutex_lock(&pool_lock);
  while (pool_size < helpers) {
    pthread_t th;
    if (pthread_create(&th, NULL, pool_worker, (void *)(long)pool_size) != 0) break;
    pthread_detach(th);
    pool_size++;
  }
  if (helpers > pool_size) helpers = pool_size;
  pool_fn = fn; pool_ctx = ctx; pool_tasks = tasks;
  __atomic_store_n(&pool_next, 0, __ATOMIC_RELAXED);
  pool_active = helpers;
  __atomic_store_n(&pool_pending, helpers, __ATOMIC_RELAXED);
  __atomic_add_fetch(&pool_generation, 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&pool_wake);
  pthread_mutex_unlock(&pool_lock);
  pool_drain();
  for (int i = 0; i < MLK_SPIN && __atomic_load_n(&pool_pending, __ATOMIC_ACQUIRE) > 0; i++) spin_pause();
  pthread_mutex_lock(&pool_lock);
  while (pool_pending > 0) pthread_cond_wait(&pool_done, &pool_lock);
  pthread_mutex_unlock(&pool_lock);
  pthread_mutex_unlock(&section_lock);
}

typedef struct {
  int trans_a, trans_b, m, n, k, lda, ldb, ldc;
  float alpha, beta;
  const float *a, *b;
  float *c;
} gemm_job;

static void gemm_tile(void *ctx, int t) {
  const gemm_job *j = ctx;
  int col = t * MLK_TILE, width = j->n - col < MLK_TILE ? j->n - col : MLK_TILE;
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
    if (j->trans_b) cblas_sgemv(MLK_ROW_MAJOR_, MLK_NO_TRANS_, width, j->k, j->alpha, b, j->ldb, j->a, incx, j->beta, j->c + col, 1);
    else cblas_sgemv(MLK_ROW_MAJOR_, MLK_TRANS_, j->k, width, j->alpha, b, j->ldb, j->a, incx, j->beta, j->c + col, 1);
    return;
  }
  cblas_sgemm(MLK_ROW_MAJOR_, j->trans_a ? MLK_TRANS_ : MLK_NO_TRANS_, j->trans_b ? MLK_TRANS_ : MLK_NO_TRANS_, j->m, width,
              j->k, j->alpha, j->a, j->lda, b, j->ldb, j->beta, j->c + col, j->ldc);
}

void mlk_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
               int ldb, float beta, float *c, int ldc) {
  int tiles = (n + MLK_TILE - 1) / MLK_TILE;
  if (tiles <= 1 && m != 1) {
    cblas_sgemm(MLK_ROW_MAJOR_, trans_a ? MLK_TRANS_ : MLK_NO_TRANS_, trans_b ? MLK_TRANS_ : MLK_NO_TRANS_, m, n, k,
                alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  gemm_job job = {trans_a, trans_b, m, n, k, lda, ldb, ldc, alpha, beta, a, b, c};
  mlk_parallel(tiles, gemm_tile, &job);
}

// y[M, N] = x[M, K] * w[N, K]^T in fixed tiles of MLK_TILE rows shared among threads (NHWC
// pointwise convolutions: many pixels, few channels).
typedef struct { int m, n, k; const float *x, *w; float *y; } rows_job;

static void rows_tile(void *ctx, int t) {
  const rows_job *j = ctx;
  int row = t * MLK_TILE, h = j->m - row < MLK_TILE ? j->m - row : MLK_TILE;
  cblas_sgemm(MLK_ROW_MAJOR_, MLK_NO_TRANS_, MLK_TRANS_, h, j->n, j->k, 1.0f, j->x + (size_t)row * j->k, j->k, j->w, j->k, 0.0f,
              j->y + (size_t)row * j->n, j->n);
}

static void mlk_sgemm_rows(int m, int n, int k, const float *x, const float *w, float *y) {
  rows_job job = {m, n, k, x, w, y};
  mlk_parallel((m + MLK_TILE - 1) / MLK_TILE, rows_tile, &job);
}

// Output columns [lo, hi) whose input column ow*stride - pad + k*dil lies inside [0, in).
static inline void valid_range(int out, int in, int stride, int pad, int off, int *lo, int *hi) {
  // ow*stride - pad + off >= 0  <=>  ow >= ceil((pad - off) / stride)
  int a = pad - off;
  int l = a <= 0 ? 0 : (a + stride - 1) / stride;
  // ow*stride - pad + off <= in - 1  <=>  ow <= floor((in - 1 + pad - off) / stride)
  int b = in - 1 + pad - off;
  int h = b < 0 ? 0 : b / stride + 1;
  if (h > out) h = out;
  if (l > h) l = h;
  *lo = l;
  *hi = h;
}

static void add_bias_nchw(float *y, const float *bias, int c, int hw) {
  if (!bias) return;
  for (int o = 0; o < c; o++) {
    float b = bias[o];
    float *row = y + (size_t)o * hw;
    for (int i = 0; i < hw; i++) row[i] += b;
  }
}

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
  cblas_sgemm(MLK_ROW_MAJOR_, MLK_NO_TRANS_, MLK_NO_TRANS_, cout_g, width, kk, 1.0f, wg, kk, cols, width, 0.0f, yg + col, out_hw);
}

typedef struct {
  const mlk_conv *p;
  const float *x, *w;
  float *y, *scratch;
  int tiles_per_image;
} conv_job;

static int thread_slot(void);

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
  float *scratch = j->scratch + (size_t)kk * MLK_TILE * (size_t)thread_slot();
  conv_nchw_tile(p, j->x + ((size_t)n * p->in_c + (size_t)gi * cin_g) * in_hw, j->w + (size_t)gi * cout_g * kk,
                 j->y + ((size_t)n * p->out_c + (size_t)gi * cout_g) * out_hw, scratch, col, width);
}

static int thread_slot(void) { return mlk_slot; }

// im2col rows one thread's scratch slot holds.
static size_t conv_nchw_slot_rows(const mlk_conv *p) {
  size_t kk = (size_t)(p->in_c / p->groups) * p->k_h * p->k_w;
  return mlk_use_avx512_() && kk > MLK_KBLOCK ? MLK_KBLOCK : kk;
}

static int conv_direct_ok(const mlk_conv *p);
static int conv_cot_ok(const mlk_conv *p);
static size_t conv_direct_scratch(const mlk_conv *p, int pre);

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
  return conv_direct_ok(p) ? conv_direct_scratch(p, 0) : im2col;
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
static void im2col_panels(const mlk_conv *p, const float *xg, float *panels, int col, int width, int k0, int k1) {
  const int in_hw = p->in_h * p->in_w, taps = p->k_h * p->k_w;
  const int kk = k1 - k0, npanels = (width + 31) / 32;
  const int plain = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 &&
                    p->pad_left == 0 && p->out_h == p->in_h && p->out_w == p->in_w;
  const int gathered = gathered_1x1(p);
  float row[MLK_TILE + 32];
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
  int tiles_per_image, m_chunks, m_chunk;
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
  int col = tile * MLK_TILE, width = out_hw - col < MLK_TILE ? out_hw - col : MLK_TILE;
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
// Small planes take output channels as the vector dimension instead ("cot"): with pixels as
// vectors, a 14x14 plane computes 224 columns for 196 (with the wide columns), while 32 output
// channels fill two vectors whatever the plane. Per panel of 32 output channels and block of 256
// k, the weights are transposed k-major (every call; see cot_task), then every strip of up to 7
// pixels of one output row sums its taps straight from the padded input: no im2col. Sums go to a small
// [pixels][32] buffer, stored transposed into the NCHW output at the end with scale, bias,
// residual and activation.
// The padded input is laid out in blocks of 16 channels, a pixel's 16 channels side by side
// ([C/16][Hq][Wq][16], `pad_block`): the 7 pixels of a strip then read 7 or 8 cache lines for 16
// channels of a tap row, where separate planes took a line or two per channel. Stride 2 reads
// every other pixel of that layout (no phase split): a broadcast costs the same at any address.
// Measured (harness, 1 thread, against the pixels-as-vectors path): 3x3 on 14x14 8-12% faster,
// on 28x28 4-5%, on 56x56 even; on 7x7 5% slower (ResNet50's layer4: 9 MB of weights, which the
// transposition reads and writes once more) and 1x1 convolutions 2-7% slower. Hence spatial
// kernels on planes of 65 to 1024 outputs. The channel blocks made 3x3 convolutions on 14x14 and
// 28x28 another 2-4% faster, and stride 2 (ResNet50's layer2.0 3x3, 56x56 -> 28x28) 13% faster
// than its phase split on the pixels-as-vectors path. Measured again in the ninth session with the
// harness's scratch 64-byte aligned, as the executor's is (malloc'd scratch had misaligned the
// weight panel and the blocked input): 3x3 on 56x56 3-7% faster (64 channels; 256: 11%), on 112x112
// 7% faster, on 224x224 10% slower (its [pixels][32] sums, 6.4 MB, leave the caches). Hence
// planes of 65 to 12544 outputs. Not for stems: 3 input channels fill 3 of a block's 16, and
// MobileNetV2's stem took 0.67-0.77 ms this way against 0.32 on the direct path.
// 1x1 convolutions on 7x7 and 14x14 planes were tried here too (no column waste): the weights'
// transposition then costs about 20% of the arithmetic (a 1x1 weight serves hw multiply-adds, a
// 3x3 one 9 hw), and in ResNet50 they were 2-4% slower in all. With every transposed panel kept
// (a throwaway cache, memory ignored) ResNet50 was 2% faster in all and MobileNetV2 no faster:
// not worth a second copy of the weights beside the parsed model's (see Docs/execution.md).
// With the weights packed at plan time (`prepacked`, mlk_conv_nchw_packed) the transposition is
// gone, and the path also takes planes of 49 to 64 outputs (7x7), where the packed GEMM had been
// faster only for the transposition's sake. Harness, 1 thread, hot / cold, against mlk_conv_nchw:
// ResNet50's layer4 3x3 512->512 on 7x7 1.347 -> 1.156 / 1.500 -> 1.204 ms, stride 2 from 14x14
// 1.419 -> 1.238 / 1.637 -> 1.337. 1x1 convolutions on 7x7 and 14x14 planes were measured this
// way too and stay on the GEMM (2-15% slower here: 1024->256 on 14x14 0.497 -> 0.524, 2048->512
// on 7x7 0.476 -> 0.545, 512->1024 stride 2 from 28x28 0.953 -> 1.074).
// `mode`: 0 weights transposed per call, 1 packed at plan time, 2 packed and the activations
// channel-blocked on either side (mlk_conv_blocked: 1x1 convolutions too, channels in blocks of 16).
static int conv_cot_fits(const mlk_conv *p, int mode) {
  const int hw = p->out_h * p->out_w;
  return mlk_use_avx512_() && p->groups == 1 && p->stride_h == p->stride_w && (p->stride_w == 1 || p->stride_w == 2) &&
         (p->k_h > 1 || p->k_w > 1 || mode == 2) && hw > (mode ? 48 : 64) && hw <= 12544 && p->out_c >= 32 && p->in_c >= 16 &&
         (mode < 2 || (p->in_c % 16 == 0 && p->out_c % 16 == 0));
}

static int conv_cot_ok(const mlk_conv *p) { return conv_cot_fits(p, 0); }

static int conv_direct_ok(const mlk_conv *p) {
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
  const float *x, *w, *bias, *scale, *res;
  const long *off;
  float *y, *scratch;
  size_t slot;
  int wq, kk, row_chunks;
  mlk_epilogue act;
  const float *packed;   // the weights as mlk_weight_panels_pack lays them out, or NULL (transposed per call)
  int y_blocked;         // store the output (and read the residual) channel-blocked, [C/16][hw][16]
} cot_job;

// Task t: output channels [32 g, 32 g + 32) of one image, g = t / row_chunks, over the output
// rows of chunk t % row_chunks.
static void cot_task(void *ctx, int t) {
  const cot_job *j = ctx;
  const mlk_conv *p = j->p;
  const int group = t / j->row_chunks, chunk = t % j->row_chunks;
  const int out_hw = p->out_h * p->out_w, co0 = 32 * group, nco = p->out_c - co0 < 32 ? p->out_c - co0 : 32;
  const int per = (p->out_h + j->row_chunks - 1) / j->row_chunks, oh0 = chunk * per;
  const int oh1 = oh0 + per < p->out_h ? oh0 + per : p->out_h;
  if (oh0 >= oh1) return;
  float *wt = j->scratch + j->slot * (size_t)mlk_slot, *ct = wt + (size_t)MLK_GEMM_KC * 32;
  const float *wp = j->packed ? NULL : j->w + (size_t)co0 * j->kk;
  const int row_strips = (p->out_w + MLK_COT_PIXELS - 1) / MLK_COT_PIXELS;
  for (int pc = 0; pc < j->kk; pc += MLK_GEMM_KC) {
    const int kc = j->kk - pc < MLK_GEMM_KC ? j->kk - pc : MLK_GEMM_KC;
    // The weights block by block (32 x kc, transposed where the strips read it), and the next
    // block's lines fetched while this one computes: they come from DRAM in a model, and the
    // whole panel transposed up front waited on memory for 12% of the convolution.
    // Packed at plan time, the block is read where it lies, and the next one (the next block of
    // this panel or the next panel's first) follows it in memory: its lines are fetched in order.
    if (j->packed) wt = (float *)j->packed + ((size_t)group * j->kk + pc) * 32;
    else mlk_cot_pack_avx512_(kc, nco, wp + pc, j->kk, wt);
    const int next = pc + MLK_GEMM_KC;
    const int has_next = next < j->kk || (co0 + 32 < p->out_c && oh0 == 0);
    const int nk = next < j->kk ? j->kk - next : j->kk, nkc = nk < MLK_GEMM_KC ? nk : MLK_GEMM_KC;
    const int nrows = next < j->kk ? nco : (p->out_c - co0 - 32 < 32 ? p->out_c - co0 - 32 : 32);
    const float *nw = NULL;
    int lines_per_row = (nkc + 15) / 16, lines = 0;
    if (has_next && j->packed) {
      // One run of 2 * nkc lines; with next == kk, the start of the next panel.
      nw = j->packed + ((size_t)group * j->kk + (next < j->kk ? next : j->kk)) * 32;
      lines_per_row = lines = 2 * nkc;
    } else if (has_next) {
      nw = next < j->kk ? wp + next : wp + (size_t)32 * j->kk;
      lines = nrows * lines_per_row;
    }
    const int strips = (oh1 - oh0) * row_strips, per = (lines + strips - 1) / strips;
    int fetched = 0, frow = 0, fcol = 0;
    for (int oh = oh0; oh < oh1; oh++)
      for (int ow = 0; ow < p->out_w; ow += MLK_COT_PIXELS) {
        const int n = p->out_w - ow < MLK_COT_PIXELS ? p->out_w - ow : MLK_COT_PIXELS;
        // Packed weights are one run of lines: the strip itself requests its share, one line per
        // step of k among its multiply-adds. (Requested here after each strip, in bursts of up to
        // 74 lines on 7x7 planes, they stalled on the full miss queue: this loop held 4.8% of
        // ResNet50's samples, and its layer4 ran 0.8 ms slower.)
        int npf = 0;
        if (j->packed) {
          npf = lines - fetched < per ? lines - fetched : per;
          if (npf > kc) npf = kc;
        }
        mlk_cot_strip_avx512_(n, 16 * p->stride_w, kc, j->x + ((size_t)oh * j->wq + ow) * p->stride_w * 16,
                              j->off + pc, wt, ct + ((size_t)oh * p->out_w + ow) * 32, pc == 0,
                              npf ? nw + 16 * (size_t)fcol : NULL, npf);
        fetched += npf;
        fcol += npf;   // (packed: one row of `lines` lines)
        for (int l = npf; l < per && fetched < lines; l++, fetched++) {
          __builtin_prefetch(nw + (size_t)frow * j->kk + 16 * fcol, 0, 3);
          if (++fcol == lines_per_row) { fcol = 0; frow++; }
        }
      }
  }
  const size_t q0 = (size_t)oh0 * p->out_w;
  if (j->y_blocked) {
    const size_t at = (size_t)co0 * out_hw + q0 * 16;
    mlk_cot_store_blocked_avx512_((int)((oh1 - oh0) * p->out_w), out_hw, nco, ct + q0 * 32, j->scale ? j->scale + co0 : NULL,
                                  j->bias ? j->bias + co0 : NULL, j->res ? j->res + at : NULL, j->y + at, j->act);
    return;
  }
  mlk_cot_store_avx512_((int)((oh1 - oh0) * p->out_w), out_hw, nco, ct + q0 * 32, j->scale ? j->scale + co0 : NULL,
                        j->bias ? j->bias + co0 : NULL, j->res ? j->res + (size_t)co0 * out_hw + q0 : NULL,
                        j->y + (size_t)co0 * out_hw + q0, j->act);
}

static size_t conv_cot_slot(const mlk_conv *p) {
  return (size_t)MLK_GEMM_KC * 32 + (size_t)p->out_h * p->out_w * 32;
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
  const int s = conv_cot_fits(p, pre) ? 1 : p->stride_w;   // channels-as-vectors reads strided pixels itself
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
  if (conv_cot_fits(p, pre)) return ((size_t)p->in_c + 15) / 16 * 16 * (size_t)hq * (size_t)wq;
  const size_t s = (size_t)p->stride_w;
  return (size_t)p->in_c * s * s * (size_t)hq * (size_t)wq;
}

static size_t conv_direct_scratch(const mlk_conv *p, int pre) {
  const size_t kk = (size_t)p->in_c * p->k_h * p->k_w;
  // Each thread's tile of output rows: m_chunk rows, a multiple of 12 (up to out_c rounded up).
  const size_t rows = ((size_t)p->out_c + 11) / 12 * 12;
  const size_t tiles = conv_cot_fits(p, pre) ? conv_cot_slot(p) : rows * MLK_TILE;
  return conv_direct_input(p, pre) + 2 * kk + tiles * (size_t)(mlk_threads + 1);
}

// Winograd F(2x2, 3x3) for 3x3 "same" convolutions of stride 1 with weights packed at plan time
// (mlk_conv_nchw_packed, mlk_conv_blocked): a 4x4 tile of input (V = B' d B, per 16 channels)
// gives a 2x2 tile of output (A' M A), where M[i][j] sums U[i][j] V[i][j] (U = G g G') over input
// channels. The sums are 16 products of [tiles x in_c] by [in_c x out_c], run on the
// channels-as-vectors strips (tiles for pixels, k = in_c): 16 multiply-adds per tile and channel
// pair where the direct path takes 36, 2.25 times fewer. The weights are transformed on each
// call, from the panels packed at plan time into scratch (U is 16/9 the size of the weights: kept
// from plan time, it would add 13 MB to ResNet50's resident weights); the input a band of tile
// rows at a time (V of a band about 128 KB, so that it stays in L2 while each panel of 32 output
// channels sweeps it 16 times), each panel's sums stored as soon as its 16 products are done. NCHW input is copied into channel blocks first (one pass over it); for NCHW output a
// band's tiles go to a [pixels][32] buffer and are stored transposed, as the strips' sums are.
// DenseNet121 (its 3x3 128->32 layers read concatenations, NCHW): 31.8 -> 27.2 ms.
// Sums differ from the direct path's in the last bits (the transforms round): ResNet50's
// logits within 4e-7 relative of the direct path's. Harness, 1 thread: 64->64 on 56x56 1.00 ->
// 0.535 ms, 128->128 on 28x28 0.99 -> 0.52, 256->256 on 14x14 0.99 -> 0.65. Planes under 196
// outputs stay direct: on 7x7 a quarter of the tiles' outputs would be dropped, and ResNet50's
// 7x7 layers wait on their weights' memory traffic, which U would raise (not measured).
static int wino_off = -1;   // MODELLENS_WINOGRAD=0 turns the path off (for comparisons)

static int conv_wino_fits(const mlk_conv *p) {
  if (wino_off < 0) {
    const char *e = getenv("MODELLENS_WINOGRAD");
    wino_off = e && strcmp(e, "0") == 0;
  }
  return !wino_off && mlk_use_avx512_() && p->groups == 1 && p->k_h == 3 && p->k_w == 3 && p->stride_h == 1 && p->stride_w == 1 &&
         p->dil_h == 1 && p->dil_w == 1 && p->pad_top == 1 && p->pad_left == 1 && p->pad_bottom == 1 && p->pad_right == 1 &&
         p->out_h == p->in_h && p->out_w == p->in_w && p->in_c % 16 == 0 && p->out_c % 16 == 0 && p->out_c >= 32 &&
         p->out_h * p->out_w >= 196;
}

// Tile rows per band: V of a band (16 * in_c floats a tile) about 128 KB, at least one row.
static int wino_band_rows(const mlk_conv *p) {
  const int tw = (p->out_w + 1) / 2, th = (p->out_h + 1) / 2;
  int r = 32768 / (16 * p->in_c * tw);
  return r < 1 ? 1 : r > th ? th : r;
}

static size_t wino_u_floats(const mlk_conv *p) { return (size_t)16 * p->in_c * ((p->out_c + 31) / 32) * 32; }

// Per thread: V of a band, one panel's sums M [16][tiles][32], the strips' offsets, and for NCHW
// output the band's outputs [pixels][32] before their transposed store.
static size_t wino_slot(const mlk_conv *p) {
  const int band = wino_band_rows(p);
  const size_t nt = (size_t)band * ((p->out_w + 1) / 2);
  return 16 * (size_t)p->in_c * nt + 16 * nt * 32 + (size_t)p->in_c * sizeof(long) / sizeof(float) + 16 +
         (size_t)2 * band * p->out_w * 32;
}

// U, an NCHW input's blocked copy, and the threads' slots.
static size_t conv_wino_scratch(const mlk_conv *p) {
  return wino_u_floats(p) + (size_t)p->in_c * p->in_h * p->in_w + wino_slot(p) * (size_t)(mlk_threads + 1);
}

typedef struct {
  const mlk_conv *p;
  const float *x, *panels, *bias, *scale, *res;
  float *y, *u, *scratch;
  int band, tw, th, y_blocked;
  mlk_epilogue act;
} wino_job;

static void wino_weights_task(void *ctx, int t) {
  const wino_job *j = ctx;
  mlk_wino_weights_avx512_(j->p->in_c, t, t + 1, j->panels, j->u);
}

static void wino_task(void *ctx, int t) {
  const wino_job *j = ctx;
  const mlk_conv *p = j->p;
  const int th0 = t * j->band, nth = j->th - th0 < j->band ? j->th - th0 : j->band, nt = nth * j->tw;
  const int out_hw = p->out_h * p->out_w, in_c = p->in_c, panels = (p->out_c + 31) / 32;
  float *v = j->scratch + wino_slot(p) * (size_t)mlk_slot;
  float *m = v + (size_t)16 * in_c * nt;
  long *off = (long *)(m + (size_t)16 * nt * 32);
  mlk_wino_input_avx512_(j->x, in_c / 16, p->in_h, p->in_w, th0, nth, j->tw, v);
  for (int k = 0; k < in_c; k++) off[k] = (long)(k / 16) * nt * 16 + k % 16;
  const int strips = (nt + MLK_COT_PIXELS - 1) / MLK_COT_PIXELS;
  for (int g = 0; g < panels; g++) {
    const int co0 = 32 * g, nco = p->out_c - co0 < 32 ? p->out_c - co0 : 32;
    for (int e = 0; e < 16; e++)
      for (int pc = 0; pc < in_c; pc += MLK_GEMM_KC) {
        const int kc = in_c - pc < MLK_GEMM_KC ? in_c - pc : MLK_GEMM_KC;
        const float *wt = j->u + (((size_t)g * 16 + e) * in_c + pc) * 32, *x = v + (size_t)e * in_c * nt;
        // The next block of u (the rest of this product's k, or the next product's first block)
        // follows this one: its lines are requested among the strips.
        const float *next = wt + (size_t)kc * 32, *end = j->u + (size_t)panels * 16 * in_c * 32;
        const int rest = pc + kc < in_c ? in_c - pc - kc : in_c;
        const int lines = next < end ? 2 * (rest < MLK_GEMM_KC ? rest : MLK_GEMM_KC) : 0, per = (lines + strips - 1) / strips;
        for (int q = 0, s = 0; q < nt; q += MLK_COT_PIXELS, s++) {
          const int n = nt - q < MLK_COT_PIXELS ? nt - q : MLK_COT_PIXELS;
          int npf = lines - s * per < per ? lines - s * per : per;
          if (npf < 0) npf = 0;
          if (npf > kc) npf = kc;
          mlk_cot_strip_avx512_(n, 16, kc, x + (size_t)q * 16, off + pc, wt, m + ((size_t)e * nt + q) * 32, pc == 0,
                                npf ? next + (size_t)s * per * 16 : NULL, npf);
        }
      }
    const size_t at = (size_t)co0 * out_hw;
    if (j->y_blocked) {
      mlk_wino_output_avx512_(m, nco, th0, nth, j->tw, p->out_h, p->out_w, j->scale ? j->scale + co0 : NULL,
                              j->bias ? j->bias + co0 : NULL, j->res ? j->res + at : NULL, j->y + at, 0, 0, j->act);
      continue;
    }
    // NCHW: the band's 2x2 tiles as [pixels][32], then stored transposed as the strips' sums are.
    float *o = (float *)(off + in_c) + 16;
    const int oy0 = 2 * th0, rows = p->out_h - oy0 < 2 * nth ? p->out_h - oy0 : 2 * nth;
    const size_t q0 = (size_t)oy0 * p->out_w;
    mlk_wino_output_avx512_(m, 32, th0, nth, j->tw, p->out_h, p->out_w, NULL, NULL, NULL, o, 1, oy0, (mlk_epilogue){0, 0, 0});
    mlk_cot_store_avx512_(rows * p->out_w, out_hw, nco, o, j->scale ? j->scale + co0 : NULL, j->bias ? j->bias + co0 : NULL,
                          j->res ? j->res + at + q0 : NULL, j->y + at + q0, j->act);
  }
}

static void conv_wino(const mlk_conv *p, const float *x, int x_blocked, const float *panels, const float *bias,
                      const float *scale, const float *res, float *y, int y_blocked, float *scratch, mlk_epilogue act) {
  const int out_hw = p->out_h * p->out_w;
  const size_t in_floats = (size_t)p->in_c * p->in_h * p->in_w;
  float *xb = scratch + wino_u_floats(p);
  wino_job j = {p, NULL, panels, bias, scale, NULL, NULL, scratch, xb + in_floats, wino_band_rows(p),
                (p->out_w + 1) / 2, (p->out_h + 1) / 2, y_blocked, act};
  mlk_parallel((p->out_c + 31) / 32, wino_weights_task, &j);
  for (int n = 0; n < p->batch; n++) {
    j.x = x + (size_t)n * in_floats;
    if (!x_blocked) {   // NCHW input: its channel-blocked copy first
      mlk_blocked_from_nchw(1, p->in_c, p->in_h * p->in_w, j.x, xb);
      j.x = xb;
    }
    j.res = res ? res + (size_t)n * p->out_c * out_hw : NULL;
    j.y = y + (size_t)n * p->out_c * out_hw;
    mlk_parallel((j.th + j.band - 1) / j.band, wino_task, &j);
  }
}

// `mode` as for conv_cot_fits (2: mlk_conv_blocked, with x and y channel-blocked as the flags say).
static void conv_nchw_direct(const mlk_conv *p, const float *x, const float *w, const float *bias, const float *scale,
                             const float *res, float *y, float *scratch, mlk_epilogue act, const float *packed, int mode,
                             int x_blocked, int y_blocked) {
  if (packed && mode >= 1 && conv_wino_fits(p)) {
    conv_wino(p, x, x_blocked, packed, bias, scale, res, y, y_blocked, scratch, act);
    return;
  }
  const int cot = conv_cot_fits(p, mode);
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
  const int tile_w = (in_place || wq >= 16) && kk <= MLK_GEMM_KC && (wide_n + wide_w - 1) / wide_w >= 2 * mlk_threads
                         ? wide_w : MLK_TILE;
  const int tiles = (wide_n + tile_w - 1) / tile_w;
  int m_chunks = 1;
  if (mlk_threads > 1 && tiles < 2 * mlk_threads) {
    m_chunks = (2 * mlk_threads + tiles - 1) / tiles;
    if (m_chunks > p->out_c / 48) m_chunks = p->out_c / 48 > 0 ? p->out_c / 48 : 1;
  }
  int m_chunk = ((p->out_c + m_chunks - 1) / m_chunks + 11) / 12 * 12;
  for (int n = 0; n < p->batch; n++) {
    const float *xn = x + (size_t)n * p->in_c * p->in_h * p->in_w;
    if (cot) {
      // Blocked input without padding is read where it lies (a 1x1 convolution's).
      const int as_is = x_blocked && hq == p->in_h && wq == p->in_w;
      pad_job pj = {p, xn, xpad, hq, wq, x_blocked};
      if (!as_is) mlk_parallel((p->in_c + 15) / 16, pad_block, &pj);
      // Few panels of 32 output channels for the threads (DenseNet's 3x3 convolutions have one):
      // each panel's rows are shared out too; every task then transposes its panel's weights.
      const int groups = (p->out_c + 31) / 32;
      int row_chunks = mlk_threads > 1 && groups < 2 * mlk_threads ? (2 * mlk_threads + groups - 1) / groups : 1;
      if (row_chunks > p->out_h) row_chunks = p->out_h;
      cot_job cj = {p, as_is ? xn : xpad, w, bias, scale, res ? res + (size_t)n * p->out_c * out_hw : NULL, off,
                    y + (size_t)n * p->out_c * out_hw, tmp, conv_cot_slot(p), wq, kk, row_chunks, act, packed, y_blocked};
      mlk_parallel(groups * row_chunks, cot_task, &cj);
      continue;
    }
    if (padded) {
      pad_job pj = {p, xn, xpad, hq, wq, 0};
      mlk_parallel(p->in_c, pad_channel, &pj);
    }
    wide_job job = {p, padded ? xpad : xn, w, bias, scale, off, y + (size_t)n * p->out_c * out_hw, tmp,
                    res ? res + (size_t)n * p->out_c * out_hw : NULL, wq, wide_n, m_chunks, m_chunk, kk, in_place, tile_w, act};
    mlk_parallel(tiles * m_chunks, wide_task, &job);
  }
}

int mlk_conv_nchw_residual_in_place_ok(const mlk_conv *p) {
  // Both AVX-512 paths (packed im2col and direct) store partial sums into y between blocks of
  // the reduction; with a single block the residual is read and the sum stored in the same
  // step. The direct path's copy into place reads the residual before it writes too.
  // The channels-as-vectors path keeps its partial sums in scratch and reads each residual value
  // just before it stores the result there, whatever k.
  _Static_assert(MLK_KBLOCK <= MLK_GEMM_KC, "one im2col block must be one GEMM block");
  return mlk_use_avx512_() && ((size_t)(p->in_c / p->groups) * p->k_h * p->k_w <= MLK_KBLOCK ||
                               (conv_direct_ok(p) && conv_cot_ok(p)));
}

void mlk_conv_nchw(const mlk_conv *p, const float *x, const float *w, const float *bias, const float *scale,
                   const float *res, float *y, float *scratch, int act, float lo, float hi) {
  const int g = p->groups, cin_g = p->in_c / g, cout_g = p->out_c / g;
  const int out_hw = p->out_h * p->out_w, in_hw = p->in_h * p->in_w;
  const int kk = cin_g * p->k_h * p->k_w;
  mlk_conv compact;
  if (subsampled_1x1(p, &compact)) {
    float *xs = scratch + mlk_conv_nchw_scratch(&compact);
    subsample_job job = {p, x, xs};
    mlk_parallel(p->batch * p->in_c, subsample_plane, &job);
    mlk_conv_nchw(&compact, xs, w, bias, scale, res, y, scratch, act, lo, hi);
    return;
  }
  if (conv_direct_ok(p)) {
    conv_nchw_direct(p, x, w, bias, scale, res, y, scratch, (mlk_epilogue){act, lo, hi}, NULL, 0, 0, 0);
    if (act == 4) mlk_activate(y, (size_t)p->batch * p->out_c * out_hw, act, lo, hi);
    return;
  }
  if (mlk_use_avx512_()) {
    // Bias and activation are applied as the GEMM stores its results. Each element's sum runs in
    // k order whatever the split below, so results do not depend on the thread count.
    int tiles_per_image = (out_hw + MLK_TILE - 1) / MLK_TILE;
    int tiles = tiles_per_image * p->batch * g, m_chunks = 1;
    if (mlk_threads > 1 && tiles < 2 * mlk_threads) {
      // Few column tiles (late, small layers): share the output channels out as well.
      m_chunks = (2 * mlk_threads + tiles - 1) / tiles;
      if (m_chunks > cout_g / 48) m_chunks = cout_g / 48 > 0 ? cout_g / 48 : 1;
    }
    int m_chunk = (cout_g + m_chunks - 1) / m_chunks;
    m_chunk = (m_chunk + 11) / 12 * 12;
    pconv_job job = {p, x, w, bias, y, scratch, tiles_per_image, m_chunks, m_chunk, {act, lo, hi}, res, scale};
    mlk_parallel(tiles * m_chunks, pconv_task, &job);
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
    mlk_parallel(tiles_per_image * p->batch * g, conv_tile, &job);
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
// what cot_task otherwise transposes block by block on every call.
int mlk_conv_nchw_cot_packs(const mlk_conv *p) { return conv_cot_fits(p, 1); }

size_t mlk_conv_nchw_packed_scratch(const mlk_conv *p) {
  const size_t direct = conv_direct_scratch(p, 1), wino = conv_wino_fits(p) ? conv_wino_scratch(p) : 0;
  return direct > wino ? direct : wino;
}

void mlk_conv_nchw_packed(const mlk_conv *p, const float *x, const float *panels, const float *bias, const float *scale,
                          const float *res, float *y, float *scratch, int act, float lo, float hi) {
  conv_nchw_direct(p, x, NULL, bias, scale, res, y, scratch, (mlk_epilogue){act, lo, hi}, panels, 1, 0, 0);
  if (act == 4) mlk_activate(y, (size_t)p->batch * p->out_c * p->out_h * p->out_w, act, lo, hi);
}

// Channel-blocked activations: see ckernels.h. The channels-as-vectors path already works on a
// blocked copy of its input and on [pixels][32] sums; here the copy is a plain row copy (or none,
// for a 1x1 convolution) and the sums are stored without transposition.
int mlk_conv_blocked_ok(const mlk_conv *p) { return conv_cot_fits(p, 2); }

int mlk_conv_winograd_ok(const mlk_conv *p) { return conv_cot_fits(p, 1) && conv_wino_fits(p); }

size_t mlk_conv_blocked_scratch(const mlk_conv *p) {
  const size_t direct = conv_direct_scratch(p, 2), wino = conv_wino_fits(p) ? conv_wino_scratch(p) : 0;
  return direct > wino ? direct : wino;
}

void mlk_conv_blocked(const mlk_conv *p, const float *x, int x_blocked, const float *panels, const float *bias,
                      const float *scale, const float *res, float *y, int y_blocked, float *scratch, int act, float lo,
                      float hi) {
  conv_nchw_direct(p, x, NULL, bias, scale, res, y, scratch, (mlk_epilogue){act, lo, hi}, panels, 2, x_blocked, y_blocked);
  if (act == 4) mlk_activate(y, (size_t)p->batch * p->out_c * p->out_h * p->out_w, act, lo, hi);
}

void mlk_global_mean(int planes, int inner, int blocked, const float *x, float *y) {
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
  if (out_hw * p->out_c < 65536) mlk_threads = 1;   // small layers: not worth waking threads
  mlk_parallel(p->batch * ((p->out_c + block - 1) / block), depthwise_task, &job);
  mlk_threads = saved;
  if (vector && act == 4) mlk_activate(y, (size_t)p->batch * p->out_c * out_hw, act, lo, hi);
}

// im2col over NHWC data for group gi: rows (oh, ow), columns (kh, kw, c), matching OHWI weights.
// Where a window row lies inside the image, undilated and with all channels, its k_w taps are
// k_w * C contiguous floats in both the input and the im2col row: one copy (palm_detection's stem,
// 5x5 stride 2 over 3 channels: 15 floats a copy instead of five memcpy calls of 3; harness, 1
// thread: the convolution 0.90 -> 0.46 ms, im2col and memcpy had been two thirds of it; 16->32
// 3x3 on 112x112 0.91 -> 0.73; 64 channels and up even).
static void im2col_nhwc(const mlk_conv *p, const float *xn, float *cols, int gi) {
  const int cin_g = p->in_c / p->groups, kk = p->k_h * p->k_w * cin_g;
  const int span = p->k_w * cin_g, whole = p->dil_w == 1 && cin_g == p->in_c;
  for (int oh = 0; oh < p->out_h; oh++)
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

size_t mlk_conv_nhwc_scratch(const mlk_conv *p) {
  const size_t kk = (size_t)p->k_h * p->k_w * (p->in_c / p->groups);
  const size_t panels = kk * (size_t)((p->out_c / p->groups + 31) / 32 * 32);
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
  const float *panels, *bias;
  float *y;
  int rows, o, kk;
  mlk_epilogue act;
} nhwc_job;

#define NHWC_ROWS 96   // output pixels per task (a multiple of the GEMM's 12-row tile)

static void nhwc_task(void *ctx, int t) {
  const nhwc_job *j = ctx;
  int r0 = t * NHWC_ROWS, rows = j->rows - r0 < NHWC_ROWS ? j->rows - r0 : NHWC_ROWS;
  mlk_gemm_packed_avx512_(rows, j->o, j->kk, j->a + (size_t)r0 * j->lda, j->lda, j->panels, j->y + (size_t)r0 * j->o, j->o,
                          NULL, j->bias, NULL, NULL, j->act, 0, 1);
}

int mlk_conv_nhwc_packs(const mlk_conv *p) {
  return p->groups == 1 && p->out_c >= 16 && mlk_use_avx512_() && !mlk_conv1x1_nhwc_small_ok_(p) && !mlk_conv_nhwc_single_ok_(p);
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

static void conv_nhwc(const mlk_conv *p, const float *x, const float *w, const float *packed, const float *bias, float *y,
                      float *scratch, int act, float lo, float hi) {
  const int g = p->groups, cin_g = p->in_c / g, cout_g = p->out_c / g;
  const int out_hw = p->out_h * p->out_w;
  const int kk = p->k_h * p->k_w * cin_g;
  const int plain = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_top == 0 &&
                    p->pad_left == 0 && p->out_h == p->in_h && p->out_w == p->in_w;
  if (g == 1 && mlk_use_avx512_()) {
    // y[HW, O] = cols[HW, KK] * W^T: the OHWI weights as 32-channel panels (a transposing copy,
    // weights-sized: made here on each call unless the caller packed them once), the bias and
    // activation applied on store. In the Keras MobileNetV2 the copies took a fifth of the run.
    const float *panels = packed;
    if (!panels && p->out_c >= 16) {   // (the narrow path below packs nothing)
      float *own = scratch + (plain ? 0 : (size_t)out_hw * kk);
      mlk_weight_panels_pack(p->out_c, kk, w, own);
      panels = own;
    }
    for (int n = 0; n < p->batch; n++) {
      const float *xn = x + (size_t)n * p->in_h * p->in_w * p->in_c;
      if (mlk_conv1x1_nhwc_small_ok_(p)) {
        single_job job = {p, xn, w, bias, y + (size_t)n * out_hw * p->out_c, {act, lo, hi}};
        mlk_parallel((out_hw + 4095) / 4096, small1x1_task, &job);
        continue;
      }
      if (mlk_conv_nhwc_single_ok_(p)) {
        single_job job = {p, xn, w, bias, y + (size_t)n * out_hw, {act, lo, hi}};
        mlk_parallel(p->out_h, single_row_task, &job);
        continue;
      }
      if (p->out_c < 16) {
        narrow_job job = {p, xn, w, bias, y + (size_t)n * out_hw * p->out_c, scratch, out_hw, kk, {act, lo, hi}};
        mlk_parallel((out_hw + MLK_TILE - 1) / MLK_TILE, narrow_task, &job);
        continue;
      }
      const float *a = xn;
      if (!plain) {
        im2col_nhwc(p, xn, scratch, 0);
        a = scratch;
      }
      nhwc_job job = {a, kk, panels, bias, y + (size_t)n * out_hw * p->out_c, out_hw, p->out_c, kk, {act, lo, hi}};
      mlk_parallel((out_hw + NHWC_ROWS - 1) / NHWC_ROWS, nhwc_task, &job);
    }
    if (act == 4) mlk_activate(y, (size_t)p->batch * out_hw * p->out_c, act, lo, hi);
    return;
  }
  if (g == 1 && plain) {
    // 1x1: the NHWC input already is the [HW, C] matrix; y[HW, O] = x[HW, C] * W[O, C]^T.
    for (int n = 0; n < p->batch; n++) {
      float *yn = y + (size_t)n * out_hw * p->out_c;
      mlk_sgemm_rows(out_hw, p->out_c, p->in_c, x + (size_t)n * out_hw * p->in_c, w, yn);
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

void mlk_conv_nhwc(const mlk_conv *p, const float *x, const float *w, const float *bias, float *y, float *scratch, int act,
                   float lo, float hi) {
  conv_nhwc(p, x, w, NULL, bias, y, scratch, act, lo, hi);
}

void mlk_conv_nhwc_packed(const mlk_conv *p, const float *x, const float *panels, const float *bias, float *y, float *scratch,
                          int act, float lo, float hi) {
  conv_nhwc(p, x, NULL, panels, bias, y, scratch, act, lo, hi);
}

static inline void dw_row(float *restrict dst, const float *restrict src, const float *restrict k, int n) {
  for (int o = 0; o < n; o++) dst[o] += src[o] * k[o];
}

static inline void max_row(float *restrict dst, const float *restrict src, int n) {
  for (int c = 0; c < n; c++) dst[c] = src[c] > dst[c] ? src[c] : dst[c];
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
  if ((size_t)p->out_h * p->out_w * p->out_c < 65536) mlk_threads = 1;
  mlk_parallel(p->batch * p->out_h, depthwise_nhwc_row, &job);
  mlk_threads = saved;
  if (vector && act == 4) mlk_activate(y, (size_t)p->batch * p->out_h * p->out_w * p->out_c, act, lo, hi);
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

typedef struct { const mlk_conv *p; const float *x; float *y; } pool_job;

static void maxpool_plane_task(void *ctx, int t) {
  const pool_job *j = ctx;
  const mlk_conv *p = j->p;
  mlk_maxpool_plane_avx512_(p, j->x + (size_t)t * p->in_h * p->in_w, j->y + (size_t)t * p->out_h * p->out_w);
}

void mlk_pool(int kind, int nhwc, int count_include_pad, const mlk_conv *p, const float *x, float *y) {
  const int C = p->in_c;
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
  if (!nhwc && kind == 0 && mlk_maxpool_avx512_ok_(p)) {
    // Planes are independent: sharing them among threads cannot change any result.
    pool_job job = {p, x, y};
    mlk_parallel(p->batch * C, maxpool_plane_task, &job);
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

typedef struct {
  const float *x, *scale, *shift;
  float *y;
  long c, inner, rows, per;
  int act;
  float lo, hi;
} affine_job;

// Rows [per t, per t + per) of the [outer * c, inner] view; rows are independent, so sharing them
// among threads cannot change a result.
static void affine_task(void *ctx, int t) {
  const affine_job *j = ctx;
  const long r0 = (long)t * j->per, r1 = r0 + j->per < j->rows ? r0 + j->per : j->rows;
  for (long r = r0; r < r1; r++) {
    const float a = j->scale[r % j->c], b = j->shift[r % j->c];
    const float *src = j->x + r * j->inner;
    float *dst = j->y + r * j->inner;
    for (long i = 0; i < j->inner; i++) dst[i] = src[i] * a + b;
    mlk_activate(dst, (size_t)j->inner, j->act, j->lo, j->hi);
  }
}

void mlk_channel_affine(const float *x, float *y, long outer, long c, long inner, const float *scale, const float *shift,
                        int act, float lo, float hi) {
  const long rows = outer * c;
  if (rows <= 0) return;
  // Tasks of at least 16K elements (DenseNet121's BatchNorms ahead of each convolution hold
  // 0.1-0.8 M): at most (elements / 16K) of them.
  const long per = inner > 0 && inner < 16384 ? (16384 + inner - 1) / inner : 1;
  affine_job job = {x, scale, shift, y, c, inner, rows, per, act, lo, hi};
  mlk_parallel((int)((rows + per - 1) / per), affine_task, &job);
}

void mlk_activate(float *y, size_t n, int kind, float lo, float hi) {
  switch (kind) {
    case 1: for (size_t i = 0; i < n; i++) y[i] = y[i] > 0 ? y[i] : 0; break;
    case 2: for (size_t i = 0; i < n; i++) y[i] = fminf(fmaxf(y[i], 0.0f), 6.0f); break;
    case 3: for (size_t i = 0; i < n; i++) y[i] = fminf(fmaxf(y[i], -1.0f), 1.0f); break;
    case 4: for (size_t i = 0; i < n; i++) y[i] = tanhf(y[i]); break;
    case 5: for (size_t i = 0; i < n; i++) y[i] = fminf(fmaxf(y[i], lo), hi); break;
    default: break;
  }
}

static inline float binop(int op, float a, float b) {
  switch (op) {
    case MLK_ADD: return a + b;
    case MLK_SUB: return a - b;
    case MLK_MUL: return a * b;
    case MLK_DIV: return a / b;
    case MLK_POW: return powf(a, b);
    case MLK_MAX: return (a > b || isnan(a)) ? a : b;
    case MLK_MIN: return (a < b || isnan(a)) ? a : b;
    case MLK_PRELU: return a < 0 ? a * b : a;
    case MLK_SQDIFF: return (a - b) * (a - b);
    case MLK_FMOD: return fmodf(a, b);
    case MLK_MOD: { float r = fmodf(a, b); return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r; }
    default: return 0;
  }
}

void mlk_binary(int op, int rank, const long *shape, const float *a, const long *as, const float *b, const long *bs, float *y) {
  long total = 1;
  for (int i = 0; i < rank; i++) total *= shape[i];
  if (total == 0) return;
  // Operands that are both whole, contiguous tensors of the output's shape: one flat loop.
  int flat = 1;
  for (int i = rank - 1, step = 1; i >= 0; step *= (int)shape[i], i--)
    if (shape[i] != 1 && (as[i] != step || bs[i] != step)) flat = 0;
  if (flat && op == MLK_ADD) { for (long k = 0; k < total; k++) y[k] = a[k] + b[k]; return; }
  if (flat && op == MLK_MUL) { for (long k = 0; k < total; k++) y[k] = a[k] * b[k]; return; }
  long idx[8] = {0};
  long inner = rank > 0 ? shape[rank - 1] : 1;
  long ai = rank > 0 ? as[rank - 1] : 0, bi = rank > 0 ? bs[rank - 1] : 0;
  long outer = total / (inner ? inner : 1);
  float *out = y;
  for (long o = 0; o < outer; o++) {
    long aoff = 0, boff = 0;
    for (int d = 0; d < rank - 1; d++) { aoff += idx[d] * as[d]; boff += idx[d] * bs[d]; }
    const float *pa = a + aoff, *pb = b + boff;
    if (ai == 1 && bi == 1 && op == MLK_ADD) for (long k = 0; k < inner; k++) out[k] = pa[k] + pb[k];
    else if (ai == 1 && bi == 1 && op == MLK_MUL) for (long k = 0; k < inner; k++) out[k] = pa[k] * pb[k];
    else if (ai == 1 && bi == 1 && op == MLK_PRELU)
      for (long k = 0; k < inner; k++) {   // both sides computed, then a select: no branch on the sign
        float v = pa[k], m = v * pb[k];
        out[k] = v < 0 ? m : v;
      }
    else if (ai == 1 && bi == 0 && op == MLK_ADD) { float v = pb[0]; for (long k = 0; k < inner; k++) out[k] = pa[k] + v; }
    else if (ai == 1 && bi == 0 && op == MLK_MUL) { float v = pb[0]; for (long k = 0; k < inner; k++) out[k] = pa[k] * v; }
    else for (long k = 0; k < inner; k++) out[k] = binop(op, pa[k * ai], pb[k * bi]);
    out += inner;
    for (int d = rank - 2; d >= 0; d--) { if (++idx[d] < shape[d]) break; idx[d] = 0; }
  }
}

void mlk_unary(int op, const float *x, float *y, size_t n, float alpha, float beta) {
  if (op == MLK_RELU) {   // the common case, as a loop the compiler vectorises
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0;
    return;
  }
  for (size_t i = 0; i < n; i++) {
    float v = x[i], r;
    switch (op) {
      case MLK_RELU: r = v > 0 ? v : 0; break;
      case MLK_SIGMOID: r = 1.0f / (1.0f + expf(-v)); break;
      case MLK_TANH: r = tanhf(v); break;
      case MLK_EXP: r = expf(v); break;
      case MLK_LOG: r = logf(v); break;
      case MLK_SQRT: r = sqrtf(v); break;
      case MLK_ABS: r = fabsf(v); break;
      case MLK_NEG: r = -v; break;
      case MLK_ERF: r = erff(v); break;
      case MLK_HARDSWISH: r = v * fminf(fmaxf(v / 6.0f + 0.5f, 0.0f), 1.0f); break;
      case MLK_HARDSIGMOID: r = fminf(fmaxf(alpha * v + beta, 0.0f), 1.0f); break;
      case MLK_LEAKYRELU: r = v < 0 ? alpha * v : v; break;
      case MLK_ELU: r = v < 0 ? alpha * (expf(v) - 1.0f) : v; break;
      case MLK_SOFTPLUS: r = v > 20 ? v : log1pf(expf(v)); break;
      case MLK_GELU: r = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); break;
      case MLK_GELU_TANH: r = 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v))); break;
      case MLK_CLIP: r = fminf(fmaxf(v, alpha), beta); if (isnan(v)) r = v; break;
      case MLK_RECIPROCAL: r = 1.0f / v; break;
      case MLK_FLOOR: r = floorf(v); break;
      case MLK_CEIL: r = ceilf(v); break;
      case MLK_ROUND: r = nearbyintf(v); break;
      case MLK_SIN: r = sinf(v); break;
      case MLK_COS: r = cosf(v); break;
      case MLK_SELU: r = beta * (v <= 0 ? alpha * (expf(v) - 1.0f) : v); break;
      case MLK_SOFTSIGN: r = v / (1.0f + fabsf(v)); break;
      case MLK_RELU6: r = fminf(fmaxf(v, 0.0f), 6.0f); break;
      case MLK_RELU_N1_TO_1: r = fminf(fmaxf(v, -1.0f), 1.0f); break;
      case MLK_SQUARE: r = v * v; break;
      case MLK_RSQRT: r = 1.0f / sqrtf(v); break;
      case MLK_SIGN: r = (float)((v > 0) - (v < 0)); break;
      case MLK_IDENTITY: r = v; break;
      case MLK_TAN: r = tanf(v); break;
      case MLK_ASIN: r = asinf(v); break;
      case MLK_ACOS: r = acosf(v); break;
      case MLK_ATAN: r = atanf(v); break;
      case MLK_SINH: r = sinhf(v); break;
      case MLK_COSH: r = coshf(v); break;
      case MLK_ASINH: r = asinhf(v); break;
      case MLK_ACOSH: r = acoshf(v); break;
      case MLK_ATANH: r = atanhf(v); break;
      case MLK_THRESHOLDED_RELU: r = v > alpha ? v : 0; break;
      case MLK_CELU: r = fmaxf(0.0f, v) + fminf(0.0f, alpha * (expf(v / alpha) - 1.0f)); break;
      case MLK_MISH: r = v * tanhf(v > 20 ? v : log1pf(expf(v))); break;
      case MLK_SHRINK: r = v < -alpha ? v + beta : (v > alpha ? v - beta : 0); break;
      default: r = v;
    }
    y[i] = r;
  }
}

void mlk_softmax(const float *x, float *y, long outer, long axis, long inner, int log) {
  for (long o = 0; o < outer; o++)
    for (long i = 0; i < inner; i++) {
      const float *px = x + o * axis * inner + i;
      float *py = y + o * axis * inner + i;
      float mx = -INFINITY;
      long arg = 0;
      for (long k = 0; k < axis; k++) if (px[k * inner] > mx) { mx = px[k * inner]; arg = k; }
      if (log == 2) { for (long k = 0; k < axis; k++) py[k * inner] = k == arg ? 1.0f : 0.0f; continue; }
      double sum = 0;
      for (long k = 0; k < axis; k++) sum += exp((double)(px[k * inner] - mx));
      for (long k = 0; k < axis; k++) {
        float e = px[k * inner] - mx;
        py[k * inner] = log ? (float)(e - log1p(sum - 1.0)) : (float)(exp((double)e) / sum);
      }
    }
}

void mlk_transpose(const void *x, void *y, int rank, const long *shape, const int *perm, int elem) {
  long in_strides[8], out_shape[8], total = 1;
  in_strides[rank - 1] = 1;
  for (int i = rank - 2; i >= 0; i--) in_strides[i] = in_strides[i + 1] * shape[i + 1];
  for (int i = 0; i < rank; i++) { out_shape[i] = shape[perm[i]]; total *= out_shape[i]; }
  long idx[8] = {0};
  const char *src = x;
  char *dst = y;
  for (long t = 0; t < total; t++) {
    long off = 0;
    for (int d = 0; d < rank; d++) off += idx[d] * in_strides[perm[d]];
    memcpy(dst + t * elem, src + off * elem, (size_t)elem);
    for (int d = rank - 1; d >= 0; d--) { if (++idx[d] < out_shape[d]) break; idx[d] = 0; }
  }
}

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

void mlk_conv_transpose_nchw(const mlk_conv *p, const float *x, const float *w, const float *bias, float *y, float *scratch) {
  const int g = p->groups, cin_g = p->in_c / g, cout_g = p->out_c / g;
  const int in_hw = p->in_h * p->in_w, out_hw = p->out_h * p->out_w;
  const int kk = cout_g * p->k_h * p->k_w;
  memset(y, 0, sizeof(float) * (size_t)p->batch * p->out_c * out_hw);
  for (int n = 0; n < p->batch; n++)
    for (int gi = 0; gi < g; gi++) {
      const float *xg = x + ((size_t)n * p->in_c + (size_t)gi * cin_g) * in_hw;
      const float *wg = w + (size_t)gi * cin_g * kk;
      float *yg = y + ((size_t)n * p->out_c + (size_t)gi * cout_g) * out_hw;
      // cols[(co, kh, kw), (ih, iw)] = W_g^T x_g
      mlk_sgemm(1, 0, kk, in_hw, cin_g, 1.0f, wg, kk, xg, in_hw, 0.0f, scratch, in_hw);
      // col2im: scatter-add every column into the output it touches.
      for (int co = 0; co < cout_g; co++)
        for (int kh = 0; kh < p->k_h; kh++)
          for (int kw = 0; kw < p->k_w; kw++) {
            const float *row = scratch + ((size_t)(co * p->k_h + kh) * p->k_w + kw) * in_hw;
            float *plane = yg + (size_t)co * out_hw;
            for (int ih = 0; ih < p->in_h; ih++) {
              int oh = ih * p->stride_h - p->pad_top + kh * p->dil_h;
              if (oh < 0 || oh >= p->out_h) continue;
              for (int iw = 0; iw < p->in_w; iw++) {
                int ow = iw * p->stride_w - p->pad_left + kw * p->dil_w;
                if (ow < 0 || ow >= p->out_w) continue;
                plane[oh * p->out_w + ow] += row[ih * p->in_w + iw];
              }
            }
          }
    }
  if (bias)
    for (int n = 0; n < p->batch; n++) add_bias_nchw(y + (size_t)n * p->out_c * out_hw, bias, p->out_c, out_hw);
}

void mlk_reduce_contiguous(const float *x, long outer, long red, long inner, int kind, float *y) {
  double *acc = malloc(sizeof(double) * (size_t)(inner > 0 ? inner : 1));
  if (!acc) return;
  for (long o = 0; o < outer; o++) {
    const float *xo = x + (size_t)o * red * inner;
    const double init = kind == 2 ? -INFINITY : (kind == 3 ? INFINITY : 0.0);
    for (long i = 0; i < inner; i++) acc[i] = init;
    for (long r = 0; r < red; r++) {
      const float *row = xo + (size_t)r * inner;
      if (kind <= 1)
        for (long i = 0; i < inner; i++) acc[i] += row[i];
      else if (kind == 2)
        for (long i = 0; i < inner; i++) acc[i] = row[i] > acc[i] || row[i] != row[i] ? row[i] : acc[i];
      else
        for (long i = 0; i < inner; i++) acc[i] = row[i] < acc[i] || row[i] != row[i] ? row[i] : acc[i];
    }
    for (long i = 0; i < inner; i++) y[(size_t)o * inner + i] = (float)(kind == 1 ? acc[i] / (double)(red > 0 ? red : 1) : acc[i]);
  }
  free(acc);
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
