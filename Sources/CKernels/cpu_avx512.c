// Which kernel set runs: AVX-512 where the CPU has it, unless MODELLENS_KERNELS=blas.
#include "avx512.h"

#include <time.h>

#if MLK_AVX512_BUILD

int mlk_avx512_available(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("fma");
}

static int avx512_choice = -1;   // -1: not decided yet

void mlk_prefer_avx512(int on) { avx512_choice = on && mlk_avx512_available(); }

int mlk_use_avx512_(void) {
  if (avx512_choice < 0) {
    const char *env = getenv("MODELLENS_KERNELS");
    avx512_choice = (env && strcmp(env, "blas") == 0) ? 0 : mlk_avx512_available();
  }
  return avx512_choice;
}

int mlk_avx512_has_(mlk_avx512_ext ext) {
  static int has[3] = {-1, -1, -1};
  if (has[ext] < 0) {
    __builtin_cpu_init();
    const int bw = __builtin_cpu_supports("avx512bw");
    has[ext] = ext == MLK_AVX512_BW     ? bw
               : ext == MLK_AVX512_VNNI ? bw && __builtin_cpu_supports("avx512vnni")
                                        : bw && __builtin_cpu_supports("avx512vbmi");
  }
  return has[ext] && mlk_use_avx512_();
}

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

static double seconds_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
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
        double t0 = seconds_now();
        fma_chains(8192, 0);
        double t1 = seconds_now();
        fma_chains(8192, 1);
        double t2 = seconds_now();
        if (t1 - t0 < four) four = t1 - t0;
        if (t2 - t1 < eight) eight = t2 - t1;
      }
      __atomic_store_n(&fma_pipes, four > 1.5 * eight ? 2 : 1, __ATOMIC_RELAXED);
    }
  }
  return __atomic_load_n(&fma_pipes, __ATOMIC_RELAXED);
}

void mlk_set_fma512_pipes(int pipes) { __atomic_store_n(&fma_pipes, pipes == 1 || pipes == 2 ? pipes : 0, __ATOMIC_RELAXED); }

#endif
