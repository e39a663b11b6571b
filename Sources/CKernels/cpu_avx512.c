// Which kernel set runs: AVX-512 where the CPU has it, unless MODELLENS_KERNELS=blas.
#include "avx512.h"

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

#endif
