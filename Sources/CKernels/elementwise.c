// Elementwise kernels: per-channel affine, activations, broadcasting binary ops, unary ops,
// softmax.
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
  if (j->act != 4 && mlk_use_avx512_()) {
    mlk_channel_affine_rows_avx512_(j->x, j->y, r0, r1, j->c, j->inner, j->scale, j->shift, (mlk_epilogue){j->act, j->lo, j->hi});
    return;
  }
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
  mlk_parallel_((int)((rows + per - 1) / per), affine_task, &job);
}

void mlk_activate(float *y, size_t n, int kind, float lo, float hi) {
  switch (kind) {
    case 1: for (size_t i = 0; i < n; i++) y[i] = y[i] > 0 ? y[i] : 0; break;
    case 2: for (size_t i = 0; i < n; i++) y[i] = fminf(fmaxf(y[i], 0.0f), 6.0f); break;
    case 3: for (size_t i = 0; i < n; i++) y[i] = fminf(fmaxf(y[i], -1.0f), 1.0f); break;
    case 4:
      if (mlk_use_avx512_()) mlk_unary_avx512_(MLK_TANH, y, y, n, 0, 0);
      else for (size_t i = 0; i < n; i++) y[i] = tanhf(y[i]);
      break;
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

// One row of y = a op b for the four IEEE arithmetic ops, with each operand either a row
// (stride 1) or one value repeated (stride 0): a loop per case that the compiler vectorises,
// where the generic path switches on the op per element. Returns 0 for other ops and strides.
#define MLK_ROW(OP)                                                                   \
  do {                                                                                \
    if (ai == 1 && bi == 1) for (long k = 0; k < n; k++) out[k] = pa[k] OP pb[k];     \
    else if (ai == 1) { float v = pb[0]; for (long k = 0; k < n; k++) out[k] = pa[k] OP v; } \
    else { float v = pa[0]; for (long k = 0; k < n; k++) out[k] = v OP pb[k]; }       \
  } while (0)
static int arithmetic_row(int op, const float *pa, long ai, const float *pb, long bi, float *out, long n) {
  if ((ai != 0 && ai != 1) || (bi != 0 && bi != 1) || (ai == 0 && bi == 0)) return 0;
  switch (op) {
    case MLK_ADD: MLK_ROW(+); return 1;
    case MLK_SUB: MLK_ROW(-); return 1;
    case MLK_MUL: MLK_ROW(*); return 1;
    case MLK_DIV: MLK_ROW(/); return 1;
    default: return 0;
  }
}
#undef MLK_ROW

typedef struct {
  int op, rank, flat, a_rows, scalar;   // a_rows: a is whole and contiguous, b one row repeated (scalar: one value)
  const long *shape, *as, *bs;
  const float *a, *b;
  float *y;
  long total, inner, rows, per, chunk;   // per: rows a task; chunk: elements a task (flat, scalar)
} binary_job;

#define BINARY_CHUNK 16384   // elements per task, about 5 us of work: fewer are not shared out

// One row of y = a op b, each operand a row (stride 1) or one value repeated (stride 0).
static void binary_row(int op, const float *pa, long ai, const float *pb, long bi, float *out, long n) {
  if ((ai == 0 || ai == 1) && (bi == 0 || bi == 1) && (ai | bi) && mlk_binary_avx512_ok_(op) && mlk_use_avx512_()) {
    mlk_binary_row_avx512_(op, pa, ai, pb, bi, out, n);
    return;
  }
  if (arithmetic_row(op, pa, ai, pb, bi, out, n)) return;
  if (ai == 1 && bi == 1 && op == MLK_PRELU)
    for (long k = 0; k < n; k++) {   // both sides computed, then a select: no branch on the sign
      float v = pa[k], m = v * pb[k];
      out[k] = v < 0 ? m : v;
    }
  else if (ai == 1 && bi == 0 && op == MLK_PRELU) {
    // One slope for the row (a channel of NCHW data): the same select, vectorised.
    const float s = pb[0];
    for (long k = 0; k < n; k++) {
      float v = pa[k], m = v * s;
      out[k] = v < 0 ? m : v;
    }
  } else for (long k = 0; k < n; k++) out[k] = binop(op, pa[k * ai], pb[k * bi]);
}

// Rows [r0, r1) of the [rows, inner] view of the output.
static void binary_rows(const binary_job *j, long r0, long r1) {
  const int rank = j->rank, op = j->op;
  const long inner = j->inner, ai = rank > 0 ? j->as[rank - 1] : 0, bi = rank > 0 ? j->bs[rank - 1] : 0;
  float *out = j->y + r0 * inner;
  if (j->a_rows) {
    // a whole and contiguous, b one row repeated (a per-channel PRelu slope, bias or scale over
    // NHWC pixels): no index arithmetic per row, where rows are a few channels long.
    if (bi == 1 && mlk_binary_avx512_ok_(op) && mlk_use_avx512_()) {
      mlk_binary_rows_avx512_(op, j->a + r0 * inner, j->b, out, r1 - r0, inner);
      return;
    }
    for (long o = r0; o < r1; o++, out += inner) binary_row(op, j->a + o * inner, ai, j->b, bi, out, inner);
    return;
  }
  long idx[8] = {0}, rem = r0;
  for (int d = rank - 2; d >= 0; d--) { idx[d] = rem % j->shape[d]; rem /= j->shape[d]; }
  for (long o = r0; o < r1; o++, out += inner) {
    long aoff = 0, boff = 0;
    for (int d = 0; d < rank - 1; d++) { aoff += idx[d] * j->as[d]; boff += idx[d] * j->bs[d]; }
    binary_row(op, j->a + aoff, ai, j->b + boff, bi, out, inner);
    for (int d = rank - 2; d >= 0; d--) { if (++idx[d] < j->shape[d]) break; idx[d] = 0; }
  }
}

static void binary_task(void *ctx, int t) {
  const binary_job *j = ctx;
  if (j->scalar) {   // one row (the whole of a) against one value, in chunks as the flat loop
    const long i0 = (long)t * j->chunk, n = j->total - i0 < j->chunk ? j->total - i0 : j->chunk;
    binary_row(j->op, j->a + i0, 1, j->b, 0, j->y + i0, n);
    return;
  }
  if (j->flat) {
    const long i0 = (long)t * j->chunk, n = j->total - i0 < j->chunk ? j->total - i0 : j->chunk;
    if (mlk_use_avx512_()) {
      mlk_binary_rows_avx512_(j->op, j->a + i0, j->b + i0, j->y + i0, 1, n);
      return;
    }
    arithmetic_row(j->op, j->a + i0, 1, j->b + i0, 1, j->y + i0, n);
    return;
  }
  const long r0 = (long)t * j->per, r1 = r0 + j->per < j->rows ? r0 + j->per : j->rows;
  binary_rows(j, r0, r1);
}

// mlk_binary's operands after dimensions of size 1 are dropped and neighbours merged where both
// operands step over the inner one's whole extent (or repeat along both): a squeeze-excitation
// scale [1, C, 1, 1] times [1, C, H, W] becomes C rows of H * W against one value each, where rows
// of W (7 on 7 x 7 planes) ran at a fifth of the speed. Returns the loop that runs them.
static int binary_plan(int op, int rank0, const long *shape0, const long *as0, const long *bs0, long *shape, long *as, long *bs,
                       int *rank_out) {
  int rank = 0;
  for (int d = 0; d < rank0 && d < 8; d++) {
    if (shape0[d] == 1) continue;
    if (rank > 0 && as[rank - 1] == as0[d] * shape0[d] && bs[rank - 1] == bs0[d] * shape0[d]) {
      shape[rank - 1] *= shape0[d];
      as[rank - 1] = as0[d];
      bs[rank - 1] = bs0[d];
      continue;
    }
    shape[rank] = shape0[d];
    as[rank] = as0[d];
    bs[rank] = bs0[d];
    rank++;
  }
  *rank_out = rank;
  // Operands that are both whole, contiguous tensors of the output's shape: one flat loop. Or a
  // whole and contiguous with b one row repeated along the rows (b's outer strides all 0, its row
  // a row or one value).
  int flat = 1, a_rows = rank >= 1;
  for (int i = rank - 1, step = 1; i >= 0; step *= (int)shape[i], i--) {
    if (shape[i] == 1) continue;
    if (as[i] != step) flat = a_rows = 0;
    if (bs[i] != step) flat = 0;
    if (i < rank - 1 && bs[i] != 0) a_rows = 0;
  }
  if (flat && (op == MLK_ADD || op == MLK_SUB || op == MLK_MUL || op == MLK_DIV)) return MLK_BINARY_FLAT;
  if (a_rows) return rank > 0 && bs[rank - 1] == 1 ? MLK_BINARY_ROWS : MLK_BINARY_SCALAR;
  return MLK_BINARY_WALK;
}

int mlk_binary_loop(int op, int rank, const long *shape, const long *as, const long *bs, long *rows) {
  long s[8], a[8], b[8];
  int r;
  const int loop = binary_plan(op, rank, shape, as, bs, s, a, b, &r);
  if (rows) {
    long total = 1;
    for (int i = 0; i < r; i++) total *= s[i];
    *rows = loop == MLK_BINARY_FLAT || loop == MLK_BINARY_SCALAR || r == 0 ? 1 : total / (s[r - 1] ? s[r - 1] : 1);
  }
  return loop;
}

void mlk_binary(int op, int rank0, const long *shape0, const float *a, const long *as0, const float *b, const long *bs0, float *y) {
  long total = 1;
  for (int i = 0; i < rank0; i++) total *= shape0[i];
  if (total == 0) return;
  long shape[8], as[8], bs[8];
  int rank;
  const int loop = binary_plan(op, rank0, shape0, as0, bs0, shape, as, bs, &rank);
  const int flat = loop == MLK_BINARY_FLAT, a_rows = loop == MLK_BINARY_ROWS || loop == MLK_BINARY_SCALAR;
  // (A scalar's operands merge into one row: split like the flat loop's, or one thread takes it all.)
  const int scalar = loop == MLK_BINARY_SCALAR && rank == 1;
  const long inner = rank > 0 ? shape[rank - 1] : 1;
  binary_job job = {op, rank, flat, a_rows, scalar, shape, as, bs, a, b, y, total, inner, total / (inner ? inner : 1), 1,
                    BINARY_CHUNK};
  job.per = inner >= BINARY_CHUNK ? 1 : BINARY_CHUNK / inner;
  // Outputs are independent: however they are shared among threads, no result changes. Few
  // tasks are made a multiple of the threads (each thread takes a contiguous range): a
  // squeeze-excitation scale over 240 channels of 14x14 made 3 tasks of 83, 83 and 74 channels,
  // and ran slower on 2 threads than on 1 (0.015 against 0.009 ms in MobileNetV3-Small).
  long tasks;
  if (flat || scalar) {
    job.chunk = (mlk_even_per_(total, BINARY_CHUNK, mlk_threads) + 15) / 16 * 16;
    tasks = (total + job.chunk - 1) / job.chunk;
  } else {
    job.per = mlk_even_per_(job.rows, job.per, mlk_threads);
    tasks = (job.rows + job.per - 1) / job.per;
  }
  mlk_parallel_((int)tasks, binary_task, &job);
}

static void unary_range(int op, const float *x, float *y, size_t n, float alpha, float beta) {
  if (op == MLK_RELU) {   // the common case, as a loop the compiler vectorises
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0;
    return;
  }
  if (mlk_unary_avx512_ok_(op) && mlk_use_avx512_()) {
    mlk_unary_avx512_(op, x, y, n, alpha, beta);
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
      case MLK_HARDSIGMOID: r = isnan(v) ? v : fminf(fmaxf(alpha * v + beta, 0.0f), 1.0f); break;
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
      case MLK_SILU: r = v * (1.0f / (1.0f + expf(-v))); break;
      default: r = v;
    }
    y[i] = r;
  }
}

typedef struct {
  int op;
  const float *x;
  float *y;
  size_t n;
  float alpha, beta;
  size_t chunk;   // elements a task
} unary_job;

#define UNARY_CHUNK 16384   // elements per task, about 5 us of work: fewer are not shared out

static void unary_task(void *ctx, int t) {
  const unary_job *j = ctx;
  const size_t i0 = (size_t)t * j->chunk, m = j->n - i0 < j->chunk ? j->n - i0 : j->chunk;
  unary_range(j->op, j->x + i0, j->y + i0, m, j->alpha, j->beta);
}

void mlk_unary(int op, const float *x, float *y, size_t n, float alpha, float beta) {
  if (n <= UNARY_CHUNK) {
    unary_range(op, x, y, n, alpha, beta);
    return;
  }
  unary_job job = {op, x, y, n, alpha, beta, UNARY_CHUNK};
  // Few tasks a multiple of the threads, as mlk_binary's (elements are independent).
  const size_t tasks = (n + UNARY_CHUNK - 1) / UNARY_CHUNK;
  if (tasks < 4 * (size_t)mlk_threads) {
    const size_t even = (size_t)mlk_even_chunks_(1, (int)tasks, (int)(n / 16), mlk_threads);
    job.chunk = ((n + even - 1) / even + 15) / 16 * 16;
  }
  mlk_parallel_((int)((n + job.chunk - 1) / job.chunk), unary_task, &job);
}

typedef struct { const float *x; float *y; long outer, axis, inner, per, cols; int log; } softmax_job;

#define SOFTMAX_COLS 256   // inner columns per task where the axis is strided

static void softmax_task(void *ctx, int t) {
  const softmax_job *j = ctx;
  if (j->inner == 1) {
    const long o0 = (long)t * j->per, o1 = o0 + j->per < j->outer ? o0 + j->per : j->outer;
    for (long o = o0; o < o1; o++) mlk_softmax_avx512_(j->x + o * j->axis, j->y + o * j->axis, j->axis, 1, j->log, 0, 1);
    return;
  }
  const long o = t / j->cols, c0 = (t % j->cols) * SOFTMAX_COLS, c1 = c0 + SOFTMAX_COLS < j->inner ? c0 + SOFTMAX_COLS : j->inner;
  mlk_softmax_avx512_(j->x + o * j->axis * j->inner, j->y + o * j->axis * j->inner, j->axis, j->inner, j->log, c0, c1);
}

void mlk_softmax(const float *x, float *y, long outer, long axis, long inner, int log) {
  if (log != 2 && axis > 0 && mlk_use_avx512_()) {
    // Rows (or column blocks) are independent: shared among threads, no result changes.
    softmax_job j = {x, y, outer, axis, inner, 1, (inner + SOFTMAX_COLS - 1) / SOFTMAX_COLS, log};
    j.per = axis >= 16384 ? 1 : 16384 / axis;
    const long tasks = inner == 1 ? (outer + j.per - 1) / j.per : outer * j.cols;
    mlk_parallel_((int)tasks, softmax_task, &j);
    return;
  }
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

// Integer arithmetic and comparisons with broadcasting: int32 or int64 operands, read as int64
// (wrapping like two's complement), int64, int32 or bool (0/1 bytes) results. A row of the
// innermost dimension at a time, the op chosen once per row.
static inline int64_t load_int(const void *p, long i, int elem) {
  return elem == 8 ? ((const int64_t *)p)[i] : (int64_t)((const int32_t *)p)[i];
}

static inline int64_t int_op(int op, int64_t x, int64_t z) {
  switch (op) {
    case MLK_IADD: return (int64_t)((uint64_t)x + (uint64_t)z);
    case MLK_ISUB: return (int64_t)((uint64_t)x - (uint64_t)z);
    case MLK_IMUL: return (int64_t)((uint64_t)x * (uint64_t)z);
    case MLK_IDIV: return z == 0 ? 0 : (z == -1 ? (int64_t)(0 - (uint64_t)x) : x / z);
    case MLK_IFMOD: return z == 0 || z == -1 ? 0 : x % z;
    case MLK_IMOD: {
      int64_t m = z == 0 || z == -1 ? 0 : x % z;
      return m != 0 && ((m < 0) != (z < 0)) ? m + z : m;
    }
    case MLK_IMAX: return x > z ? x : z;
    case MLK_IMIN: return x < z ? x : z;
    case MLK_IEQ: return x == z;
    case MLK_IGT: return x > z;
    case MLK_ILT: return x < z;
    case MLK_IGE: return x >= z;
    case MLK_ILE: return x <= z;
    case MLK_INE: return x != z;
    case MLK_IAND: return x != 0 && z != 0;
    case MLK_IOR: return x != 0 || z != 0;
    case MLK_IXOR: return (x != 0) != (z != 0);
    default: return 0;
  }
}

#define INT_ROW(STORE)                                                                        \
  for (long k = 0; k < n; k++) {                                                             \
    const int64_t r = int_op(op, load_int(a, ao + k * ai, ae), load_int(b, bo + k * bi, be)); \
    STORE;                                                                                   \
  }

// Rows of one integer type on both sides, each operand contiguous (step 1) or one value
// repeated (step 0): the op chosen once for the whole row, so that the loops vectorise (a
// one-hot Equal over 2048 x 257 int32 took 2 ns an element with the op chosen per element).
#define FAST_LOOP(T, OUT, EXPR)                                              \
  do {                                                                       \
    const T *pa = (const T *)a, *pb = (const T *)b;                          \
    OUT *dst = (OUT *)y;                                                     \
    if (ai && bi) {                                                          \
      for (long k = 0; k < n; k++) { const T x = pa[k], z = pb[k]; dst[k] = (OUT)(EXPR); } \
    } else if (bi) {                                                         \
      const T x = pa[0];                                                     \
      for (long k = 0; k < n; k++) { const T z = pb[k]; dst[k] = (OUT)(EXPR); } \
    } else if (ai) {                                                         \
      const T z = pb[0];                                                     \
      for (long k = 0; k < n; k++) { const T x = pa[k]; dst[k] = (OUT)(EXPR); } \
    } else {                                                                 \
      const T x = pa[0], z = pb[0];                                          \
      for (long k = 0; k < n; k++) dst[k] = (OUT)(EXPR);                     \
    }                                                                        \
  } while (0)
#define FAST_OPS(T, OUT)                                                     \
  switch (op) {                                                              \
    case MLK_IADD: FAST_LOOP(T, OUT, (T)((uint64_t)x + (uint64_t)z)); return 1; \
    case MLK_ISUB: FAST_LOOP(T, OUT, (T)((uint64_t)x - (uint64_t)z)); return 1; \
    case MLK_IMAX: FAST_LOOP(T, OUT, x > z ? x : z); return 1;                \
    case MLK_IMIN: FAST_LOOP(T, OUT, x < z ? x : z); return 1;                \
    case MLK_IEQ: FAST_LOOP(T, OUT, x == z); return 1;                       \
    case MLK_INE: FAST_LOOP(T, OUT, x != z); return 1;                       \
    case MLK_IGT: FAST_LOOP(T, OUT, x > z); return 1;                        \
    case MLK_ILT: FAST_LOOP(T, OUT, x < z); return 1;                        \
    case MLK_IGE: FAST_LOOP(T, OUT, x >= z); return 1;                       \
    case MLK_ILE: FAST_LOOP(T, OUT, x <= z); return 1;                       \
    default: return 0;                                                       \
  }

static int int_row_fast(int op, long n, const void *a, long ai, int ae, const void *b, long bi, int be, void *y, int ye) {
  if (ae != be || ai < 0 || ai > 1 || bi < 0 || bi > 1) return 0;
  const int compare = op == MLK_IEQ || op == MLK_INE || op == MLK_IGT || op == MLK_ILT || op == MLK_IGE || op == MLK_ILE;
  // Comparisons give bool (1 byte); arithmetic keeps the operands' type.
  if (compare ? ye != 1 : ye != ae) return 0;
  if (ae == 4) {
    if (compare) { FAST_OPS(int32_t, uint8_t) } else { FAST_OPS(int32_t, int32_t) }
  } else if (ae == 8) {
    if (compare) { FAST_OPS(int64_t, uint8_t) } else { FAST_OPS(int64_t, int64_t) }
  }
  return 0;
}
#undef FAST_OPS
#undef FAST_LOOP

void mlk_binary_int(int op, int rank, const long *shape, const void *a, const long *as, int ae, const void *b, const long *bs,
                    int be, void *y, int ye) {
  long total = 1;
  for (int i = 0; i < rank; i++) total *= shape[i];
  if (total == 0) return;
  const long n = rank > 0 ? shape[rank - 1] : 1, ai = rank > 0 ? as[rank - 1] : 0, bi = rank > 0 ? bs[rank - 1] : 0;
  long idx[8] = {0};
  for (long row = 0, out = 0; row < total / n; row++, out += n) {
    long ao = 0, bo = 0;
    for (int d = 0; d < rank - 1; d++) { ao += idx[d] * as[d]; bo += idx[d] * bs[d]; }
    if (int_row_fast(op, n, (const char *)a + ao * ae, ai, ae, (const char *)b + bo * be, bi, be, (char *)y + out * ye, ye)) {
      for (int d = rank - 2; d >= 0; d--) { if (++idx[d] < shape[d]) break; idx[d] = 0; }
      continue;
    }
    if (ye == 8) { int64_t *dst = (int64_t *)y + out; INT_ROW(dst[k] = r) }
    else if (ye == 4) { int32_t *dst = (int32_t *)y + out; INT_ROW(dst[k] = (int32_t)r) }
    else { uint8_t *dst = (uint8_t *)y + out; INT_ROW(dst[k] = r != 0) }
    for (int d = rank - 2; d >= 0; d--) { if (++idx[d] < shape[d]) break; idx[d] = 0; }
  }
}
#undef INT_ROW
