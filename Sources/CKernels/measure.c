#define _GNU_SOURCE
#include "internal.h"

#include <sched.h>

#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// 12 independent FMA chains hide the FMA latency on two ports. Written in inline assembly so
// the rate does not depend on the build's optimisation level (SwiftPM compiles C at -O0 in
// debug builds). Registers start at zero, so no denormals or infinities appear.
#define FMA12(op, r) \
  op " %%" r "12, %%" r "13, %%" r "0\n" op " %%" r "12, %%" r "13, %%" r "1\n" \
  op " %%" r "12, %%" r "13, %%" r "2\n" op " %%" r "12, %%" r "13, %%" r "3\n" \
  op " %%" r "12, %%" r "13, %%" r "4\n" op " %%" r "12, %%" r "13, %%" r "5\n" \
  op " %%" r "12, %%" r "13, %%" r "6\n" op " %%" r "12, %%" r "13, %%" r "7\n" \
  op " %%" r "12, %%" r "13, %%" r "8\n" op " %%" r "12, %%" r "13, %%" r "9\n" \
  op " %%" r "12, %%" r "13, %%" r "10\n" op " %%" r "12, %%" r "13, %%" r "11\n"

__attribute__((target("avx512f"))) static double fma_avx512(long iters) {
  __asm__ volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n vmovaps %%zmm0, %%zmm1\n vmovaps %%zmm0, %%zmm2\n vmovaps %%zmm0, %%zmm3\n"
      "vmovaps %%zmm0, %%zmm4\n vmovaps %%zmm0, %%zmm5\n vmovaps %%zmm0, %%zmm6\n vmovaps %%zmm0, %%zmm7\n"
      "vmovaps %%zmm0, %%zmm8\n vmovaps %%zmm0, %%zmm9\n vmovaps %%zmm0, %%zmm10\n vmovaps %%zmm0, %%zmm11\n"
      "vmovaps %%zmm0, %%zmm12\n vmovaps %%zmm0, %%zmm13\n"
      "1:\n" FMA12("vfmadd231ps", "zmm") "dec %0\n jnz 1b\n vzeroupper\n"
      : "+r"(iters)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
        "xmm13", "cc");
  return 0;
}

__attribute__((target("avx2,fma"))) static double fma_avx2(long iters) {
  __asm__ volatile(
      "vxorps %%ymm0, %%ymm0, %%ymm0\n vmovaps %%ymm0, %%ymm1\n vmovaps %%ymm0, %%ymm2\n vmovaps %%ymm0, %%ymm3\n"
      "vmovaps %%ymm0, %%ymm4\n vmovaps %%ymm0, %%ymm5\n vmovaps %%ymm0, %%ymm6\n vmovaps %%ymm0, %%ymm7\n"
      "vmovaps %%ymm0, %%ymm8\n vmovaps %%ymm0, %%ymm9\n vmovaps %%ymm0, %%ymm10\n vmovaps %%ymm0, %%ymm11\n"
      "vmovaps %%ymm0, %%ymm12\n vmovaps %%ymm0, %%ymm13\n"
      "1:\n" FMA12("vfmadd231ps", "ymm") "dec %0\n jnz 1b\n vzeroupper\n"
      : "+r"(iters)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
        "xmm13", "cc");
  return 0;
}

static double fma_scalar(long iters) {
  volatile float a = 0;
  for (long k = 0; k < iters * 12; k++) a = a * 0.999999f + 1e-7f;
  return a;
}

volatile double mlk_sink;

// 512-bit FMAs the core issues per cycle, 1 or 2, measured once: eight FMAs on four chains (each
// twice, so waiting on its latency) against eight on eight chains. A core with two 512-bit FMA
// pipes (Intel Xeon, Zen 5) runs the second about twice as fast; one that splits a 512-bit FMA
// over its two 256-bit pipes (Zen 4) runs both at one a cycle. Assembly, so that the loop is the
// same at any optimisation level; registers start at zero (no denormals).
#define FMA_ON(r) "vfmadd231ps %%zmm14, %%zmm15, %%zmm" #r "\n"
__attribute__((target("avx512f"))) static void fma_chains(long iters, int eight) {
  if (eight)
    __asm__ volatile("vpxord %%zmm0, %%zmm0, %%zmm0\n vmovaps %%zmm0, %%zmm1\n vmovaps %%zmm0, %%zmm2\n vmovaps %%zmm0, %%zmm3\n"
                     "vmovaps %%zmm0, %%zmm4\n vmovaps %%zmm0, %%zmm5\n vmovaps %%zmm0, %%zmm6\n vmovaps %%zmm0, %%zmm7\n"
                     "vmovaps %%zmm0, %%zmm14\n vmovaps %%zmm0, %%zmm15\n"
                     "1:\n" FMA_ON(0) FMA_ON(1) FMA_ON(2) FMA_ON(3) FMA_ON(4) FMA_ON(5) FMA_ON(6) FMA_ON(7)
                     "dec %0\n jnz 1b\n vzeroupper\n"
                     : "+r"(iters)
                     :
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm14", "xmm15", "cc");
  else
    __asm__ volatile("vpxord %%zmm0, %%zmm0, %%zmm0\n vmovaps %%zmm0, %%zmm1\n vmovaps %%zmm0, %%zmm2\n vmovaps %%zmm0, %%zmm3\n"
                     "vmovaps %%zmm0, %%zmm14\n vmovaps %%zmm0, %%zmm15\n"
                     "1:\n" FMA_ON(0) FMA_ON(1) FMA_ON(2) FMA_ON(3) FMA_ON(0) FMA_ON(1) FMA_ON(2) FMA_ON(3)
                     "dec %0\n jnz 1b\n vzeroupper\n"
                     : "+r"(iters)
                     :
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm14", "xmm15", "cc");
}

static int fma_pipes = 0;   // 0: not measured yet

// Called where a kernel picks its form, before its parallel section (threads racing to measure
// would both store the same answer, but would time each other's load).
int mlk_fma512_pipes_(void) {
  if (__atomic_load_n(&fma_pipes, __ATOMIC_RELAXED) == 0) {
    const char *env = getenv("MODELLENS_FMA512_PIPES");
    if (env && (atoi(env) == 1 || atoi(env) == 2)) {
      __atomic_store_n(&fma_pipes, atoi(env), __ATOMIC_RELAXED);
    } else if (!mlk_use_avx512_()) {
      __atomic_store_n(&fma_pipes, 2, __ATOMIC_RELAXED);
    } else {
      // About 30 us a try; the best of seven each, interleaved, so that a preempted try is dropped.
      double four = 1e9, eight = 1e9;
      for (int t = 0; t < 7; t++) {
        double t0 = now();
        fma_chains(8192, 0);
        double t1 = now();
        fma_chains(8192, 1);
        double t2 = now();
        if (t1 - t0 < four) four = t1 - t0;
        if (t2 - t1 < eight) eight = t2 - t1;
      }
      __atomic_store_n(&fma_pipes, four > 1.5 * eight ? 2 : 1, __ATOMIC_RELAXED);
    }
  }
  return __atomic_load_n(&fma_pipes, __ATOMIC_RELAXED);
}

void mlk_set_fma512_pipes(int pipes) { __atomic_store_n(&fma_pipes, pipes == 1 || pipes == 2 ? pipes : 0, __ATOMIC_RELAXED); }

double mlk_fma_peak_gflops(double seconds, const char **isa) {
  int lanes;
  double (*kernel)(long);
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) { kernel = fma_avx512; lanes = 16; *isa = "avx512"; }
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) { kernel = fma_avx2; lanes = 8; *isa = "avx2"; }
  else { kernel = fma_scalar; lanes = 1; *isa = "scalar"; }
  long iters = 1 << 16;
  double best = 0;
  double start = now();
  while (now() - start < seconds) {
    double t0 = now();
    mlk_sink = kernel(iters);
    double dt = now() - t0;
    if (dt < 1e-3) { iters *= 2; continue; }
    double gflops = (double)iters * 12.0 * lanes * 2.0 / dt / 1e9;
    if (gflops > best) best = gflops;
  }
  return best;
}

double mlk_sgemm_gflops(int n, int reps, int threads) {
  size_t sz = (size_t)n * (size_t)n;
  float *a = malloc(sz * sizeof(float)), *b = malloc(sz * sizeof(float)), *c = malloc(sz * sizeof(float));
  if (!a || !b || !c) { free(a); free(b); free(c); return 0; }
  for (size_t i = 0; i < sz; i++) { a[i] = (float)(i % 7) * 0.1f; b[i] = (float)(i % 5) * 0.2f; c[i] = 0; }
  // Through mlk_sgemm, as the executor's products run: the library (oneDNN or OpenBLAS) on one
  // thread per tile, the tiles shared among `threads` by the pool.
  mlk_set_threads(threads);
  double best = 0;
  for (int r = 0; r < reps + 1; r++) {
    double t0 = now();
    mlk_sgemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double dt = now() - t0;
    double gflops = 2.0 * n * (double)n * n / dt / 1e9;
    if (r > 0 && gflops > best) best = gflops;  // the first run warms up
  }
  free(a); free(b); free(c);
  return best;
}

double mlk_conv_gflops(int n, int reps, int threads) {
  // An n -> n channel 1x1 convolution over n pixels (32 x n/32): an n^3 GEMM through the
  // executor's own convolution path, whichever kernel set it uses on this CPU.
  mlk_conv p = {0};
  p.batch = 1; p.in_c = n; p.out_c = n; p.in_h = p.out_h = 32; p.in_w = p.out_w = n / 32;
  p.k_h = p.k_w = 1; p.stride_h = p.stride_w = 1; p.dil_h = p.dil_w = 1; p.groups = 1;
  mlk_set_threads(threads);
  size_t sz = (size_t)n * (size_t)n;
  size_t scratch_floats = mlk_conv_nchw_scratch(&p);
  float *x = malloc(sz * sizeof(float)), *w = malloc(sz * sizeof(float)), *y = malloc(sz * sizeof(float));
  float *scratch = malloc(scratch_floats * sizeof(float) + 64);
  if (!x || !w || !y || !scratch) { free(x); free(w); free(y); free(scratch); return 0; }
  for (size_t i = 0; i < sz; i++) { x[i] = (float)(i % 7) * 0.1f; w[i] = (float)(i % 5) * 0.2f; }
  double best = 0;
  for (int r = 0; r < reps + 1; r++) {
    double t0 = now();
    mlk_conv_nchw(&p, x, w, NULL, NULL, NULL, y, scratch, 0, 0, 0);
    double dt = now() - t0;
    double gflops = 2.0 * (double)n * n * (p.in_h * p.in_w) / dt / 1e9;
    if (r > 0 && gflops > best) best = gflops;
  }
  free(x); free(w); free(y); free(scratch);
  return best;
}

double mlk_triad_gbps(size_t bytes, int reps) {
  size_t n = bytes / sizeof(float);
  float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)), *c = malloc(n * sizeof(float));
  if (!a || !b || !c) { free(a); free(b); free(c); return 0; }
  for (size_t i = 0; i < n; i++) { a[i] = 0; b[i] = 1; c[i] = 2; }
  double best = 0;
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    for (size_t i = 0; i < n; i++) a[i] = b[i] + 0.5f * c[i];
    double dt = now() - t0;
    double gbps = 3.0 * (double)n * sizeof(float) / dt / 1e9;
    if (gbps > best) best = gbps;
  }
  mlk_sink = a[n / 2];
  free(a); free(b); free(c);
  return best;
}

double mlk_weight_stream_gbps(size_t bytes, int reps, int threads) {
  // A classifier layer at batch 1 (Gemm with transB: y = x W^T) whose weights are far larger
  // than any cache: every run streams them from memory through the executor's own product.
  const int k = 4096;
  const int n = (int)(bytes / sizeof(float) / k);
  float *w = malloc((size_t)n * k * sizeof(float)), *x = malloc((size_t)k * sizeof(float)), *y = malloc((size_t)n * sizeof(float));
  if (!w || !x || !y || n < 1) { free(w); free(x); free(y); return 0; }
  for (size_t i = 0; i < (size_t)n * k; i++) w[i] = (float)(i % 7) * 0.1f;
  for (int i = 0; i < k; i++) x[i] = (float)(i % 5) * 0.2f;
  mlk_set_threads(threads);
  double best = 0;
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    mlk_sgemm(0, 1, 1, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
    double dt = now() - t0;
    double gbps = (double)n * k * sizeof(float) / dt / 1e9;
    if (gbps > best) best = gbps;
  }
  mlk_sink = y[n / 2];
  free(w); free(x); free(y);
  return best;
}

long long mlk_heap_in_use(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 m = mallinfo2();
  return (long long)m.uordblks + (long long)m.hblkhd;
#else
  return -1;
#endif
}

#if defined(__linux__)
static cpu_set_t saved_cpus;
static int pinned;

int mlk_pin_thread(void) {
  if (pinned || sched_getaffinity(0, sizeof saved_cpus, &saved_cpus) != 0) return 0;
  int seen = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, &saved_cpus) || ++seen < 2) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pinned = sched_setaffinity(0, sizeof one, &one) == 0;
    return pinned;
  }
  return 0;
}

void mlk_unpin_thread(void) {
  if (pinned) sched_setaffinity(0, sizeof saved_cpus, &saved_cpus);
  pinned = 0;
}
#else
int mlk_pin_thread(void) { return 0; }
void mlk_unpin_thread(void) {}
#endif
